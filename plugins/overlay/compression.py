"""Recognise and undo the compression of a tar stream: gzip, zstd, bzip2, xz or none.

The format is read from the stream's first bytes (its magic number), as Docker does for
``docker import`` and as registries require for layers whose media type says little
(``application/vnd.docker.image.rootfs.diff.tar``). zstd needs the ``zstandard`` module;
without it a zstd stream is refused with a clear error rather than unpacked as garbage.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from typing import BinaryIO

from shoal.errors import InvalidArgument

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)
_PEEK = 6


def detect(head: bytes) -> str:
    """Name the compression of a stream from its first bytes: "gzip", "zstd", "bzip2", "xz" or "none"."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "none"


def decompressed(raw: BinaryIO) -> BinaryIO:
    """Wrap a readable binary stream so reads return its uncompressed bytes.

    Args:
        raw: the (possibly compressed) stream, positioned at its start.
    Returns:
        A readable stream of the uncompressed bytes; ``raw`` itself when it is not
        compressed. Raises ``InvalidArgument`` for zstd without the ``zstandard`` module.
    """
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(_RawAdapter(raw))
    kind = detect(buffered.peek(_PEEK)[:_PEEK])
    if kind == "gzip":
        return gzip.GzipFile(fileobj=buffered, mode="rb")
    if kind == "bzip2":
        return bz2.BZ2File(buffered, mode="rb")
    if kind == "xz":
        return lzma.LZMAFile(buffered, mode="rb")
    if kind == "zstd":
        try:
            import zstandard
        except ImportError:
            raise InvalidArgument(
                "the layer is zstd-compressed, but the Python module 'zstandard' is not installed"
            ) from None
        return zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
    return buffered


class _RawAdapter(io.RawIOBase):
    """Lets ``io.BufferedReader`` sit on any object with ``read`` (for ``peek``)."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def is_data_error(exc: BaseException) -> bool:
    """Tell whether a decompressor raised ``exc`` because its input is corrupt or truncated.

    gzip reports bad input as ``BadGzipFile`` (an ``OSError`` without errno) or
    ``zlib.error``, a cut-off stream as ``EOFError``; real I/O errors carry an errno.
    """
    if isinstance(exc, (EOFError, zlib.error, lzma.LZMAError)):
        return True
    if isinstance(exc, OSError):
        return exc.errno is None
    return type(exc).__module__.startswith("zstandard")
