"""Recognise and undo the compression of a tar stream: gzip, zstd, bzip2, xz or none.

The format is read from the stream's first bytes (its magic number), as Docker does for
``docker import`` and as registries require for layers whose media type says little
(``application/vnd.docker.image.rootfs.diff.tar``). zstd needs the ``zstandard`` module;
without it a zstd stream is refused with a clear error rather than unpacked as garbage.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from typing import Any, BinaryIO

from shoal.errors import InvalidArgument

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)
_PEEK = 6
_IN_CHUNK = 1 << 20
_OUT_CHUNK = 4 << 20  # bounds the memory a highly compressed stream can take


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
        return GzipReader(buffered)
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


class GzipReader(io.RawIOBase):
    """The uncompressed bytes of a gzip stream (one or more members), inflated in large chunks.

    ``gzip.GzipFile`` inflates and checksums in Python-level slices of a few kilobytes; a
    layer of a hundred megabytes then spends more time in that loop than in zlib. Here
    zlib parses each member's header and checks its CRC-32 and length trailer itself.
    Zero bytes padding the end of a member are skipped, as ``gzip`` does. A corrupt stream
    raises ``zlib.error``, a truncated one ``EOFError``.
    """

    def __init__(self, source: BinaryIO, chunk: int = _IN_CHUNK) -> None:
        super().__init__()
        self._source = source
        self._chunk = chunk
        self._inflater: Any = None  # None between members
        self._pending = b""
        self._out = b""
        self._offset = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` uncompressed bytes (everything left when negative); b"" at the end."""
        if size < 0:
            return b"".join(iter(lambda: self.read(_IN_CHUNK), b""))
        while self._offset >= len(self._out) and not self._done:
            self._out, self._offset = self._inflate(), 0
        data = self._out[self._offset : self._offset + size]
        self._offset += len(data)
        return data

    def _inflate(self) -> bytes:
        """The next piece of output (maybe empty), at most ``_OUT_CHUNK`` bytes of it."""
        data = self._pending or self._source.read(self._chunk)
        self._pending = b""
        if self._inflater is None:
            data = data.lstrip(b"\x00")
            if not data:
                self._done = self._source_ended()
                return b""
            self._inflater = zlib.decompressobj(wbits=31)
        elif not data:
            raise EOFError("compressed stream ended before the end-of-stream marker was reached")
        out = self._inflater.decompress(data, _OUT_CHUNK)
        self._pending = self._inflater.unconsumed_tail
        if self._inflater.eof:
            self._pending = self._inflater.unused_data
            self._inflater = None
        return out

    def _source_ended(self) -> bool:
        peek = getattr(self._source, "peek", None)
        if peek is not None:
            return not peek(1)
        self._pending = self._source.read(self._chunk)
        return not self._pending


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

    Bad input shows as ``zlib.error`` (or, from the standard decompressors, an ``OSError``
    without errno), a cut-off stream as ``EOFError``; real I/O errors carry an errno.
    """
    if isinstance(exc, (EOFError, zlib.error, lzma.LZMAError)):
        return True
    if isinstance(exc, OSError):
        return exc.errno is None
    return type(exc).__module__.startswith("zstandard")
