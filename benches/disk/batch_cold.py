# The cost of a durable commit on the disk alone: hot run + cold pages, each commit
# flushing its own, or the cold pages flushed every 16 or 256 commits (the hot runs written
# with O_DSYNC, which flushes only their range). Usage: python3 batch_cold.py (needs /tmp).
import os, time, random
from disk import prep, stat
path='/tmp/bc.bin'
fd=prep(path, 256)
dfd=os.open(path, os.O_RDWR|os.O_DSYNC)
p10=b'\2'*(4096*10); p1=b'\4'*4096
def run(name, n, every):
    s0=stat(); t0=time.time(); c0=os.times()
    for i in range(n):
        os.pwrite(fd, p1, random.randrange(1<<20, 150<<20)&~4095)
        os.pwrite(fd, p1, random.randrange(1<<20, 150<<20)&~4095)
        if every == 1:
            os.pwrite(fd, p10, (200<<20)+ (i%1000)*4096*16); os.fdatasync(fd)
        else:
            os.pwrite(dfd, p10, (200<<20)+ (i%1000)*4096*16)
            if i % every == every-1: os.fdatasync(fd)
    t=time.time()-t0; s1=stat(); c1=os.times()
    return t/n*1e6, (s1[0]-s0[0])/n, (c1.system-c0.system)/n*1e6
res={}
for r in range(4):
    for every in [1, 16, 256]:
        res.setdefault(every, []).append(run(every, 2048, every))
for every, rs in res.items():
    print(f"cold pages synced every {every:4}: us/commit {sorted(x[0] for x in rs)}  requests/commit {rs[0][1]:.2f} sys us {sorted(round(x[2]) for x in rs)}")
os.unlink(path)
