"""Reading the files an operator names (policy.yaml, the accounts and devices files, the GeoIP database, PEM files,
the key file): only a regular file is read.

A FIFO, a character device or a socket put where a file should be would block the read for good: found in review,
a ``policy.yaml`` replaced by a FIFO froze the reload thread, every later reload and SIGHUP behind it, and SIGTERM
(the process waited for that thread for ever). The file is opened without blocking (``O_NONBLOCK``: a FIFO opens at
once, writer or not), looked at (``fstat``), and refused unless it is a regular file, as a problem with the file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_CHUNK = 1 << 20


def read_regular(path: Path) -> bytes:
    """The bytes of the regular file at ``path`` (symbolic links followed). ``OSError`` as ``Path.read_bytes``
    raises it, and for anything but a regular file one whose ``strerror`` says what it is."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
            raise OSError(errno.EINVAL, f"not a regular file ({kind})", str(path))
        chunks: list[bytes] = []
        while chunk := os.read(fd, _CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_regular_text(path: Path, encoding: str) -> str:
    """``read_regular``, decoded (``UnicodeDecodeError`` as ``Path.read_text`` raises it)."""
    return read_regular(path).decode(encoding)
