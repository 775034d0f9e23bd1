# SQLite's commit pattern (pages appended to a small WAL, fdatasync) against shadowkv's
# (a hot run plus a scattered cold page). Usage: python3 sqlite_pattern.py (needs /tmp).
import os, random
from disk import prep, timed as run
big=prep('/tmp/sp-big.bin', 256)
wal=prep('/tmp/sp-wal.bin', 4)
p4=b'\2'*(4096*4); p12=b'\2'*(4096*12); p1=b'\3'*4096
def wal_append(i):   # SQLite-like: 4 pages appended sequentially in a 4 MiB WAL, wrapping
    os.pwrite(wal, p4, (i*4*4096) % (4<<20)); os.fdatasync(wal)
def wal_append12(i):
    os.pwrite(wal, p12, (i*12*4096) % (4<<20)); os.fdatasync(wal)
def ours_seq(i):     # our hot run, but sequential in the big file
    os.pwrite(big, p12, (128<<20) + (i*12*4096) % (4<<20)); os.fdatasync(big)
def ours_cycle(i):   # our hot run cycling between 3 spots, plus one cold page
    os.pwrite(big, p1, random.randrange(1<<20, 100<<20)&~4095)
    os.pwrite(big, p12, (128<<20) + (i%3)*16*4096); os.fdatasync(big)
def ours_seq_cold(i):
    os.pwrite(big, p1, random.randrange(1<<20, 100<<20)&~4095)
    os.pwrite(big, p12, (128<<20) + (i*12*4096) % (4<<20)); os.fdatasync(big)
for r in range(2):
    run('wal: 4 pages appended, small file', 2000, wal_append)
    run('wal: 12 pages appended, small file', 2000, wal_append12)
    run('big file: 12 pages appended in 4 MiB', 2000, ours_seq)
    run('big file: 12 pages cycling 3 spots + 1 cold', 2000, ours_cycle)
    run('big file: 12 pages appended + 1 cold', 2000, ours_seq_cold)
for f in ['/tmp/sp-big.bin','/tmp/sp-wal.bin']: os.unlink(f)
