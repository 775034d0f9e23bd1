# Write patterns of a durable commit on this disk: one run, a run plus scattered pages.
# Usage: python3 patterns.py (needs /tmp).
import os, time, random
def stat():
    f=open('/sys/block/vda/stat').read().split()
    return int(f[4]), int(f[6]), int(f[15])
path='/tmp/pattern.bin'
fd=os.open(path, os.O_RDWR|os.O_CREAT|os.O_TRUNC)
buf=b'\1'*(1<<20)
for i in range(256): os.pwrite(fd, buf, i<<20)
os.fsync(fd)
def run(name, n, fn):
    s0=stat(); t0=time.time()
    for i in range(n):
        fn(i); os.fdatasync(fd)
    t=time.time()-t0; s1=stat()
    print(f"{name:28} {t/n*1e6:7.1f} us/commit  writes/commit {(s1[0]-s0[0])/n:.2f} KiB/commit {(s1[1]-s0[1])/n/2:.1f}")
p8=b'\2'*(4096*8); p13=b'\2'*(4096*13); p3=b'\3'*(4096*3); p1=b'\4'*4096
def one_run(i): os.pwrite(fd, p8, (128<<20)+ (i%500)*4096*16)
def one_run13(i): os.pwrite(fd, p13, (128<<20)+ (i%500)*4096*16)
def cold_hot(i):
    os.pwrite(fd, p1, random.randrange(1<<20, 50<<20)&~4095)
    os.pwrite(fd, p8, (128<<20)+ (i%500)*4096*16)
def cold2_hot(i):
    os.pwrite(fd, p1, random.randrange(1<<20, 50<<20)&~4095)
    os.pwrite(fd, p1, random.randrange(1<<20, 50<<20)&~4095)
    os.pwrite(fd, p8, (128<<20)+ (i%500)*4096*16)
def cold_near(i):
    os.pwrite(fd, p3, (100<<20)+ (i%500)*4096*4)
    os.pwrite(fd, p8, (128<<20)+ (i%500)*4096*16)
for r in range(2):
    run('one run of 8', 1500, one_run)
    run('one run of 13', 1500, one_run13)
    run('cold 1 random + run 8', 1500, cold_hot)
    run('cold 2 random + run 8', 1500, cold2_hot)
    run('cold run 3 seq + run 8', 1500, cold_near)
os.unlink(path)
