"""Files named by the operator (settings, targets, keys), read so that no name can hang or
swamp the program: opened without blocking (a FIFO or a device where a file should be must
not wait for a writer), only a regular file is read, and no more than it may hold."""

from __future__ import annotations

import os
import stat


class FileRefused(ValueError):
    """The name is not a regular file of at most the size allowed; the message says which."""


def read_regular_file(path: str, limit: int) -> tuple[bytes, os.stat_result]:
    """The content and status of the file ``path`` names, at most ``limit`` octets.  Raises
    FileRefused, or OSError when it cannot be opened or read."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "rb") as f:  # the status of the very file read, not of what the name points to later
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused("not a regular file")
        if st.st_size > limit:
            raise FileRefused(f"{st.st_size:,} octets: too large (at most {limit:,})")
        return f.read(limit), st
