# A commit into a written file against one into a hole of a sparse file (ext4 without a
# journal then writes the inode too). Usage: python3 holes.py (needs /tmp).
import os, time, sys
def stat():
    f=open('/sys/block/vda/stat').read().split()
    return int(f[4]), int(f[6]), int(f[15])
def run(path, mode, n=1500, pages=8):
    fd=os.open(path, os.O_RDWR|os.O_CREAT|os.O_TRUNC)
    size=256<<20
    if mode=='written':
        buf=b'\1'*(1<<20)
        for i in range(256): os.pwrite(fd, buf, i<<20)
    else:
        os.ftruncate(fd, size)
    os.fsync(fd)
    data=b'\2'*(4096*pages)
    s0=stat(); t0=time.time()
    off=128<<20
    for i in range(n):
        os.pwrite(fd, data, off); off += 4096*pages
        os.fdatasync(fd)
    t=time.time()-t0; s1=stat()
    print(f"{mode:8} {t/n*1e6:7.1f} us/commit  writes/commit {(s1[0]-s0[0])/n:.2f} sectors/commit {(s1[1]-s0[1])/n:.1f} flushes/commit {(s1[2]-s0[2])/n:.2f}")
    os.close(fd); os.unlink(path)
for r in range(2):
    for m in ['written','holes']:
        run('/tmp/holes.bin', m)
