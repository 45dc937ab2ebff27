"""Pushing an image: its layer and config blobs, then its manifest, to a registry.

A blob the target repository already has is skipped; one that another repository of the
same registry holds (an image pulled from there, or pushed before) is mounted across
repositories instead of uploaded. Uploads run concurrently (bounded), large blobs in
chunks. The manifest is sent as the stored bytes, so its digest is the one the local
store knows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from shoal.slots import ImageRecord

from . import progress as p
from .distribution import RegistryClient
from .manifests import Descriptor, parse_manifest
from .reference import Reference, parse_reference

if TYPE_CHECKING:
    from .store import LocalImageStore


async def push_image(store: LocalImageStore, client: RegistryClient, record: ImageRecord, target: Reference,
                     report: p.Report = p.ignore, concurrency: int = 5) -> str:  # fmt: skip
    """Push a stored image to ``target`` (a tag reference); returns the manifest digest."""
    raw = await trio.to_thread.run_sync(store.blobs.read, record.digest)
    manifest = parse_manifest(raw)
    assert manifest.config is not None
    report(p.status(f"The push refers to repository [{target.repository}]"))
    sources = [parse_reference(n).path for n in record.names if parse_reference(n).domain == target.domain]
    sources = [s for s in dict.fromkeys(sources) if s != target.path]
    limiter = trio.Semaphore(max(concurrency, 1))

    async def send(blob: Descriptor, show: bool) -> None:
        ident = p.short_id(blob.digest)
        if show:
            report(p.status("Preparing", ident))
        async with limiter:
            if await client.blob_size(target.path, blob.digest) is not None:
                if show:
                    report(p.status("Layer already exists", ident))
                return
            for source in sources:
                if await client.mount_blob(target.path, blob.digest, source):
                    if show:
                        report(p.status(f"Mounted from {source}", ident))
                    return
            path = store.blobs.path(blob.digest)
            size = path.stat().st_size

            def on_bytes(done: int) -> None:
                if show:
                    report(p.transfer("Pushing", ident, done, size))

            await client.upload_blob(target.path, blob.digest, path, size, on_bytes)
            if show:
                report(p.status("Pushed", ident))

    try:
        async with trio.open_nursery() as nursery:
            for layer in reversed(manifest.layers):
                nursery.start_soon(send, layer, True)
            nursery.start_soon(send, manifest.config, False)
    except BaseExceptionGroup as group:
        error = p.first_error(group)
        if error is group:
            raise
        raise error from None
    tag = target.tag or "latest"
    digest = await client.put_manifest(target.path, tag, raw, manifest.media_type)
    report(p.status(f"{tag}: digest: {digest} size: {len(raw)}"))
    report({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(raw)}})
    return digest
