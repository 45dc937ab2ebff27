"""A TLS byte stream on trio in which OpenSSL reads and writes the socket itself.

``trio.SSLStream`` feeds OpenSSL through memory buffers, in Python, on every call: for Raft's
many small messages that costs more CPU than the rest of a message's handling, and about half
a millisecond per write of a single client on loopback. Here the ``ssl`` module's own socket
wrapper, in non-blocking mode, encrypts into and decrypts from the kernel socket in C; trio only
waits for readiness when OpenSSL asks for it (``SSLWantReadError``, ``SSLWantWriteError``).
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import trio

#: Most bytes asked of OpenSSL per receive: it returns one TLS record (16 KiB) at most anyway,
#: and asking for more only allocates a larger buffer to shrink.
MAX_RECEIVE = 65536


def wrap(tcp: trio.SocketStream, context: ssl.SSLContext, *, server_side: bool) -> ssl.SSLSocket:
    """Take over ``tcp``'s connected socket (TCP_NODELAY and all) as a non-blocking TLS socket."""
    raw = socket.socket(fileno=tcp.socket.detach())
    raw.setblocking(False)
    return context.wrap_socket(raw, server_side=server_side, do_handshake_on_connect=False)


class TlsSocketStream(trio.abc.Stream):
    """A connected ``ssl.SSLSocket`` as a trio stream; call ``do_handshake`` first.

    Errors of the connection (a reset, a bad record, a refused certificate) raise
    ``trio.BrokenResourceError``, as ``trio.SSLStream`` does.
    """

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self._sock = sock
        self._sending = False
        self._receiving = False
        self._closed = False

    def getpeercert(self) -> dict[str, Any] | None:
        return self._sock.getpeercert()  # type: ignore[return-value]

    async def _wait(self, want: ssl.SSLError) -> None:
        if isinstance(want, ssl.SSLWantWriteError):
            await trio.lowlevel.wait_writable(self._sock)
        else:
            await trio.lowlevel.wait_readable(self._sock)

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the TLS stream is closed")

    async def do_handshake(self) -> None:
        self._check_open()
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                self._sock.do_handshake()
                break
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as want:
                await self._wait(want)
            except OSError as exc:  # ssl.SSLError included: a refused certificate, say
                raise trio.BrokenResourceError(f"TLS handshake failed: {exc}") from exc
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._check_open()
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this TLS stream")
        self._sending = True
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            view = memoryview(data)
            waited = False
            while view:
                try:
                    # Retried with the same bytes after a want: OpenSSL resumes where it was.
                    view = view[self._sock.send(view) :]
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as want:
                    await self._wait(want)
                    waited = True
                except OSError as exc:
                    self._check_open()
                    raise trio.BrokenResourceError(f"TLS send failed: {exc}") from exc
            if not waited:
                await trio.lowlevel.cancel_shielded_checkpoint()
        finally:
            self._sending = False

    def send_nowait(self, data: bytes) -> int:
        """Send what the socket takes now, without waiting: the number of bytes taken.

        A 0 after OpenSSL wanted to wait may leave part of ``data`` inside OpenSSL: the next
        send on this stream must then start with the same bytes, whole.
        """
        self._check_open()
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this TLS stream")
        try:
            return self._sock.send(data)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return 0
        except OSError as exc:
            raise trio.BrokenResourceError(f"TLS send failed: {exc}") from exc

    async def wait_send_all_might_not_block(self) -> None:
        self._check_open()
        await trio.lowlevel.wait_writable(self._sock)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        self._check_open()
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this TLS stream")
        self._receiving = True
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            waited = False
            while True:
                try:
                    data = self._sock.recv(min(max_bytes or MAX_RECEIVE, MAX_RECEIVE))
                    break
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as want:
                    await self._wait(want)
                    waited = True
                except ssl.SSLZeroReturnError:
                    data = b""  # the peer closed the TLS session cleanly
                    break
                except OSError as exc:
                    self._check_open()
                    raise trio.BrokenResourceError(f"TLS receive failed: {exc}") from exc
            if not waited:
                await trio.lowlevel.cancel_shielded_checkpoint()
            return data
        finally:
            self._receiving = False

    async def aclose(self) -> None:
        """Close at once, without a close_notify: peers treat the end of the stream as its end."""
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self._sock)
            self._sock.close()
        await trio.lowlevel.checkpoint()
