# Write patterns of a durable commit on this disk: one run, a run plus scattered pages.
# Usage: python3 patterns.py (needs /tmp).
import os, random
from disk import prep, timed
path='/tmp/pattern.bin'
fd=prep(path, 256)
def run(name, n, fn):
    def commit(i):
        fn(i); os.fdatasync(fd)
    timed(name, n, commit)
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
