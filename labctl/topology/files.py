"""Reading the files a topology names (the topology itself, secret files) safely.

A path can name anything: a FIFO that blocks `open()` until a writer comes, /dev/zero that
never ends, a directory, a binary. Only regular files are read, with a size limit, and
never more than the limit plus one byte is read from them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# A topology is a few kB (the largest shipped one is ~7 kB); a secret is a line.
MAX_TOPOLOGY_BYTES = 1 << 20
MAX_SECRET_BYTES = 64 << 10


class FileReadError(ValueError):
    """A file that cannot be read as asked; the message says why, never its content."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


def read_limited(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, or FileReadError."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; regular files ignore it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise FileReadError(f"cannot read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileReadError(f"cannot read: not a regular file ({_file_type(info.st_mode)})")
        if info.st_size > limit:
            raise FileReadError(f"too large: {info.st_size:,} bytes (at most {limit:,})")
        chunks, size = [], 0
        while size <= limit:  # the file may grow after fstat
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise FileReadError(f"too large: more than {limit:,} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise FileReadError(f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"


def decode_text(data: bytes) -> str:
    """UTF-8 text without NUL bytes, or FileReadError naming the line of the first bad byte."""
    nul = data.find(b"\0")
    if nul >= 0:  # no text file has one, whatever else it has
        line = data.count(b"\n", 0, nul) + 1
        raise FileReadError(f"a binary file, not text: a NUL byte on line {line}", line)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FileReadError(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line} (is it a binary file?)",
            line,
        ) from None
