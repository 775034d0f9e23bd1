# What the scripts in this folder share: the device's counters, a file written whole (no
# holes, so ext4 writes no inode with a commit), and a timed loop of commits.
import os, time
def stat():
    """Write requests, sectors written and flushes of the device so far."""
    f=open('/sys/block/vda/stat').read().split()
    return int(f[4]), int(f[6]), int(f[15])
def prep(path, mb):
    """A file of `mb` MiB written whole and fsynced; its descriptor."""
    fd=os.open(path, os.O_RDWR|os.O_CREAT|os.O_TRUNC)
    buf=b'\1'*(1<<20)
    for i in range(mb): os.pwrite(fd, buf, i<<20)
    os.fsync(fd); return fd
def timed(name, n, commit):
    """Runs commit(i) n times; prints the time, requests and KiB of a commit."""
    s0=stat(); t0=time.time()
    for i in range(n): commit(i)
    t=time.time()-t0; s1=stat()
    print(f"{name:44} {t/n*1e6:7.1f} us/commit  requests {(s1[0]-s0[0])/n:.2f}  KiB {(s1[1]-s0[1])/n/2:.1f}  flushes {(s1[2]-s0[2])/n:.2f}")
