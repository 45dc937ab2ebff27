"""Docker's multiplexed stream framing, decoded incrementally.

Without a TTY, attach, exec and logs interleave stdout and stderr on one stream, each piece
behind an 8-byte header: the stream number (0 stdin, 1 stdout, 2 stderr, 3 system error),
three zero bytes, and the payload length as a big-endian 32-bit integer.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

STDIN, STDOUT, STDERR, SYSERR = 0, 1, 2, 3
_HEADER = struct.Struct(">BxxxL")


def encode_frame(stream: int, payload: bytes) -> bytes:
    """One frame: header plus payload."""
    return _HEADER.pack(stream, len(payload)) + payload


class FrameError(ValueError):
    """The bytes are not a multiplexed stream."""


class FrameDecoder:
    """Feed bytes as they arrive; get back whole frames as ``(stream, payload)``.

    Frames may be split anywhere across reads, and one read may hold many frames.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        """Yield every frame completed by ``data``; keep the remainder for the next call."""
        self._buffer += data
        while len(self._buffer) >= _HEADER.size:
            stream, size = _HEADER.unpack_from(self._buffer)
            if stream > SYSERR:
                raise FrameError(f"unknown stream {stream} in a multiplexed stream")
            end = _HEADER.size + size
            if len(self._buffer) < end:
                return
            payload = bytes(self._buffer[_HEADER.size : end])
            del self._buffer[:end]
            yield stream, payload

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered (non-zero at end of stream: truncated)."""
        return len(self._buffer)
