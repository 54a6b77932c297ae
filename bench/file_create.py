#!/usr/bin/env python3
"""What one outbox email costs the file system: the outbox's own sequence (create a temporary
file, write 1,500 bytes, fsync, rename, fsync the folder; src/email/outbox.rs), COUNT times in a
fresh folder under PARENT, ROUNDS times, each round's folder deleted after it as a benchmark's run
folder is. Prints the CPU time (user + system) and wall time per file, for each round.

On ext4 without a journal (this VM's root file system) the kernel skips inodes freed in the last
60 to 360 s when it allocates one (`recently_deleted` in fs/ext4/ialloc.c, checked only when
`s_journal == NULL`), probing each in the buffer cache, so a file costs more the more files
were deleted nearby in the minutes before. With a journal (ext4's default) it does not.

Usage: bench/file_create.py PARENT [COUNT=3000] [ROUNDS=3]
"""

import os
import shutil
import sys
import tempfile
import time


def one_round(folder, count):
    cpu, wall = time.process_time(), time.monotonic()
    for i in range(count):
        final = os.path.join(folder, f"{i}.eml")
        temporary = final + ".tmp"
        fd = os.open(temporary, os.O_CREAT | os.O_WRONLY)
        os.write(fd, b"x" * 1500)
        os.fsync(fd)
        os.close(fd)
        os.rename(temporary, final)
        dir_fd = os.open(folder, os.O_RDONLY)
        os.fsync(dir_fd)
        os.close(dir_fd)
    return (time.process_time() - cpu) / count * 1e6, (time.monotonic() - wall) / count * 1e6


def main():
    parent = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    os.makedirs(parent, exist_ok=True)
    for r in range(rounds):
        folder = tempfile.mkdtemp(prefix="file-create-", dir=parent)
        cpu, wall = one_round(folder, count)
        print(f"{parent} round {r + 1}: CPU {cpu:.0f} us, wall {wall:.0f} us per file")
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
