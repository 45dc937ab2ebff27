"""Moving a process's standard streams over a hijacked connection, and Docker's framing.

Without a terminal, output goes in 8-byte-headed frames ``[stream, 0, 0, 0, size32be]`` so
the client can tell stdout from stderr; with one, as raw bytes. Input from the client goes to
the process's stdin; the client closing its write side closes stdin while output goes on.
"""

from __future__ import annotations

import logging
import struct

import trio

from shoal.containers import STDERR, STDOUT, Attachment
from shoal.errors import InvalidArgument

from .http import RawStream

log = logging.getLogger("shoal.engine_api")

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"
#: Docker's default key sequence that detaches a client from a container.
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def frame(stream: int, data: bytes) -> bytes:
    """One frame of Docker's multiplexed stream."""
    return struct.pack(">BxxxL", stream, len(data)) + data


def encode_output(stream: int, data: bytes, tty: bool) -> bytes:
    """Output as it goes on the wire: raw with a terminal, framed without."""
    return data if tty else frame(stream if stream in (STDOUT, STDERR) else STDOUT, data)


def content_type(tty: bool) -> str:
    """The content type of a hijacked or log stream."""
    return RAW_STREAM if tty else MULTIPLEXED_STREAM


def parse_detach_keys(spec: str) -> bytes:
    """Docker's detach key syntax ("ctrl-p,ctrl-q", "a,ctrl-@") as the bytes to watch for."""
    keys = bytearray()
    for part in spec.split(","):
        part = part.strip()
        if len(part) == 1:
            keys.append(ord(part))
        elif part.lower().startswith("ctrl-") and len(part) == 6:
            key = part[5].lower()
            if "a" <= key <= "z":
                keys.append(ord(key) - ord("a") + 1)
            elif key in "@[\\]^_":
                keys.append({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}[key])
            else:
                raise InvalidArgument(f"invalid detach keys {spec!r}: unknown key {part!r}")
        else:
            raise InvalidArgument(f"invalid detach keys {spec!r}: unknown key {part!r}")
    return bytes(keys)


class DetachScanner:
    """Finds the detach sequence in client input, holding back a partial match.

    ``feed`` returns the bytes to pass on and whether the full sequence was typed.
    """

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self._held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        if not self.keys:
            return data, False
        data = self._held + data
        self._held = b""
        at = data.find(self.keys)
        if at >= 0:
            return data[:at], True
        # Hold back a tail that could be the start of the sequence.
        for size in range(min(len(self.keys) - 1, len(data)), 0, -1):
            if data.endswith(self.keys[:size]):
                self._held = data[-size:]
                return data[:-size], False
        return data, False

    def flush(self) -> bytes:
        """What was held back, once no more input comes."""
        held, self._held = self._held, b""
        return held


async def pump(raw: RawStream, attachment: Attachment, *, stdin: bool, detach_keys: bytes = b"") -> None:
    """Carry streams both ways until the output ends, the client leaves, or it detaches.

    The attachment is closed (detached) on return; the process keeps running.
    """
    try:
        async with trio.open_nursery() as nursery:
            if stdin:
                nursery.start_soon(_forward_input, raw, attachment, detach_keys, nursery.cancel_scope)
            await _forward_output(raw, attachment)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await attachment.aclose()


async def _forward_output(raw: RawStream, attachment: Attachment) -> None:
    while True:
        chunk = await attachment.read()
        if chunk is None:
            await raw.send_eof()
            return
        stream, data = chunk
        if data:
            await raw.send_all(encode_output(stream, data, attachment.tty))


async def _forward_input(raw: RawStream, attachment: Attachment, detach_keys: bytes, done: trio.CancelScope) -> None:
    scanner = DetachScanner(detach_keys)
    while True:
        data = await raw.receive_some()
        if not data:
            try:
                if held := scanner.flush():
                    await attachment.write(held)
                await attachment.close_stdin()
            except BrokenPipeError:
                pass
            return  # half-close: output keeps flowing
        data, detached = scanner.feed(data)
        try:
            if data:
                await attachment.write(data)
        except BrokenPipeError:
            return  # the process stopped reading; its output may still come
        if detached:
            done.cancel()
            return
