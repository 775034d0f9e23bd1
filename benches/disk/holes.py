# A commit into a written file against one into a hole of a sparse file (ext4 without a
# journal then writes the inode too). Usage: python3 holes.py (needs /tmp).
import os
from disk import prep, timed
def run(path, mode, n=1500, pages=8):
    if mode=='written':
        fd=prep(path, 256)
    else:
        fd=os.open(path, os.O_RDWR|os.O_CREAT|os.O_TRUNC)
        os.ftruncate(fd, 256<<20); os.fsync(fd)
    data=b'\2'*(4096*pages)
    def commit(i):
        os.pwrite(fd, data, (128<<20) + i*4096*pages); os.fdatasync(fd)
    timed(mode, n, commit)
    os.close(fd); os.unlink(path)
for r in range(2):
    for m in ['written','holes']:
        run('/tmp/holes.bin', m)
