"""Which scheme a loopback registry is reached with: plain HTTP first, HTTPS (unverified)
when the registry only speaks TLS; and blobs served over TLS."""

from __future__ import annotations

import datetime
import hashlib
import ssl
from functools import partial
from pathlib import Path
from typing import Any

import trio

from shoal.plugins.images.distribution import RegistryClient, TransportOptions
from shoal.plugins.registry.server import RegistryServer
from shoal.plugins.registry.service import serve
from shoal.plugins.registry.storage import RegistryStorage

OPTIONS = TransportOptions(retries=0, backoff=0.01, timeout=5.0)


async def answer_v2(stream: Any) -> None:
    """Answer every request on a connection with an empty 200 (enough for ``/v2/``)."""
    try:
        data = b""
        while True:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            data += chunk
            while b"\r\n\r\n" in data:
                _, data = data.split(b"\r\n\r\n", 1)
                await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return


def server_context(tmp: Path) -> ssl.SSLContext:
    """A TLS server context with a fresh self-signed certificate for 127.0.0.1."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))  # fmt: skip
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return context


async def connect_to(handler: Any) -> str:
    async with trio.open_nursery() as nursery:
        [listener] = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        async with await RegistryClient.connect(f"127.0.0.1:{port}", options=OPTIONS) as client:
            base = client.base_url
        nursery.cancel_scope.cancel()
    return base


async def test_a_plain_loopback_registry_is_reached_over_http_at_once() -> None:
    assert (await connect_to(answer_v2)).startswith("http://")


async def test_a_tls_only_loopback_registry_is_reached_over_https(tmp_path: Path) -> None:
    context = server_context(tmp_path)

    async def tls(stream: trio.SocketStream) -> None:
        wrapped = trio.SSLStream(stream, context, server_side=True)
        try:
            await wrapped.do_handshake()
        except trio.BrokenResourceError:
            return  # the plain HTTP try
        await answer_v2(wrapped)

    assert (await connect_to(tls)).startswith("https://")


async def test_blobs_from_a_tls_registry_are_whole_and_ranged(tmp_path: Path) -> None:
    # Over TLS the server cannot sendfile(2): the blob goes out in chunks, ranges included.
    blob = bytes(range(256)) * 20000  # 5 MB: several chunks
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    (tmp_path / "blob").write_bytes(blob)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(serve, RegistryServer(RegistryStorage(tmp_path / "registry")), "127.0.0.1:0",
                                      server_context(tmp_path))  # fmt: skip
        async with await RegistryClient.connect(address, options=OPTIONS) as client:
            assert client.base_url.startswith("https://")
            await client.upload_blob("a/b", digest, tmp_path / "blob", len(blob))
            partial = tmp_path / "partial"
            partial.write_bytes(blob[:1000])  # resumed with a Range request
            await client.fetch_blob("a/b", digest, partial)
            assert partial.read_bytes() == blob
        nursery.cancel_scope.cancel()
