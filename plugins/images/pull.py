"""Pulling an image: manifest (through a manifest list, for this host's platform), config
and layers from a registry into the local store, unpacked and ready for containers.

Layers download concurrently (bounded), each into a stable partial file that a broken or
cancelled transfer leaves behind, so the next attempt or the next pull resumes it. Each
layer is unpacked while it downloads, by a child process that follows the partial file
(``apply_growing_layer``); it is told where the file ends only once the blob is verified
and renamed into the blob store, and the layer is renamed into place only after the one
below it, so a wrong download leaves no layer. Blobs are downloaded under a per-digest
lock: concurrent pulls of one image (or images sharing layers) fetch each blob once.
Nothing becomes visible before ``add_image`` commits the index, and everything in
between is held from ``gc``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from shoal.errors import InvalidArgument
from shoal.plugins.overlay.snapshotter import chain_ids
from shoal.slots import GrowingLayers, ImageRecord

from . import progress as p
from .distribution import RegistryClient, RegistryError
from .manifests import Descriptor, Manifest, is_runnable, layer_compression, select_platform
from .reference import Reference

if TYPE_CHECKING:
    from .store import LocalImageStore

# Smaller layer blobs are unpacked from the stored blob after their download, in a thread:
# a child process that follows a download takes about 30 ms of CPU to start, more than
# such a layer costs to unpack.
_FOLLOW_MIN = 64 << 10


async def fetch_to_store(store: LocalImageStore, client: RegistryClient, repository: str, blob: Descriptor,
                         on_bytes: Any = None, restarted: Any = None) -> bool:  # fmt: skip
    """Make sure a blob is in the blob store, downloading it if needed; True if downloaded."""
    async with store.blob_lock(blob.digest):
        path = store.partial_path(blob.digest)
        if store.blobs.has(blob.digest):
            # A layer unpack may have created the file to follow after the blob was stored.
            if path.exists() and path.stat().st_size == 0:
                path.unlink()
            return False
        await client.fetch_blob(repository, blob.digest, path, on_bytes, restarted)
        size = path.stat().st_size
        if blob.size and size != blob.size:
            path.unlink(missing_ok=True)
            raise RegistryError(f"blob {blob.digest} is {size} bytes, the manifest says {blob.size}")
        await trio.to_thread.run_sync(store.adopt_blob, path, blob.digest)
        return True


async def resolve(client: RegistryClient, ref: Reference, platform: Mapping[str, str] | None) -> tuple[Manifest, str, Manifest | None, str]:
    """The image manifest for a reference: (manifest, its digest, the list it came from or None, the digest pulled by)."""
    top, top_digest = await client.get_manifest(ref.path, ref.digest or ref.tag or "latest")
    if not top.is_index:
        return top, top_digest, None, top_digest
    try:
        entry = select_platform(top.entries, platform)
    except InvalidArgument as exc:
        raise RegistryError(str(exc)) from None
    manifest, digest = await client.get_manifest(ref.path, entry.digest)
    if manifest.is_index:
        raise RegistryError(f"manifest list entry {entry.digest} of {ref} is itself a list")
    return manifest, digest, top, top_digest


async def pull_image(store: LocalImageStore, client: RegistryClient, ref: Reference, report: p.Report = p.ignore,
                     platform: Mapping[str, str] | None = None, concurrency: int = 3) -> ImageRecord:  # fmt: skip
    """Pull ``ref`` with an open client; report Docker-style progress; return the stored image."""
    report(p.status(f"Pulling from {ref.path}", ref.tag or ref.digest or "latest"))
    manifest, digest, index, pulled_by = await resolve(client, ref, platform)
    if not is_runnable(manifest):
        raise RegistryError(f"{ref} is not a container image (config media type {manifest.config.media_type if manifest.config else None})")
    assert manifest.config is not None
    for layer in manifest.layers:
        layer_compression(layer)  # refuse unknown layer types before downloading anything
    names = ([] if ref.digest else [str(ref)]) + [f"{ref.repository}@{pulled_by}"]
    keys = {manifest.config.digest, digest, pulled_by, *(l.digest for l in manifest.layers)}
    with store.holding(keys):
        await fetch_to_store(store, client, ref.path, manifest.config)
        config = _load_config(await trio.to_thread.run_sync(store.blobs.read, manifest.config.digest))
        diff_ids = config["rootfs"]["diff_ids"]
        if len(diff_ids) != len(manifest.layers):
            raise RegistryError(f"{ref}: the config lists {len(diff_ids)} layers, the manifest {len(manifest.layers)}")
        chains = chain_ids(diff_ids)
        with store.holding(chains):
            existing = await store.find_manifest(digest)
            if existing is None or not await store.snapshotter.has_layer(diff_ids):
                await _fetch_layers(store, client, ref, manifest, diff_ids, report, concurrency)
            else:
                for layer in manifest.layers:
                    report(p.status("Already exists", p.short_id(layer.digest)))
        report(p.status(f"Digest: {pulled_by}"))
        fresh = not all(store.names_image(name) == manifest.config.digest for name in names)
        sizes = [await store.unpacked_size(diff_ids[: i + 1], layer) for i, layer in enumerate(manifest.layers)]
        record = await store.add_image(manifest.raw, names, sizes, index=index.raw if index else None)
    shown = ref.familiar()
    report(p.status(f"Status: Downloaded newer image for {shown}" if fresh else f"Status: Image is up to date for {shown}"))
    return record


def _load_config(raw: bytes) -> dict[str, Any]:
    try:
        config = json.loads(raw)
        diff_ids = config["rootfs"]["diff_ids"]
        if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise RegistryError("the image config is not valid JSON with rootfs.diff_ids") from None
    return config


async def _fetch_layers(store: LocalImageStore, client: RegistryClient, ref: Reference, manifest: Manifest,
                        diff_ids: list[str], report: p.Report, concurrency: int) -> None:  # fmt: skip
    """Download missing layer blobs concurrently; unpack each while it downloads, commit bottom up.

    A snapshotter that can (``apply_growing_layer``) unpacks a layer in a child process
    that follows the partial file as it grows, and is told where it ends only once the
    blob is verified and stored; the layer is renamed into place after the one below it.
    Layers already stored, small ones, and downloads that had to start over, are unpacked
    from the stored blob.
    """
    layers = manifest.layers
    committed = [trio.Event() for _ in layers]
    limiter = trio.Semaphore(max(concurrency, 1))
    snapshotter = store.snapshotter
    growing = snapshotter.apply_growing_layer if isinstance(snapshotter, GrowingLayers) else None

    def progress(layer: Descriptor, feed: Any = None) -> Any:
        ident, last = p.short_id(layer.digest), [0]

        def on_bytes(done: int) -> None:
            if feed is not None:
                feed(done)
            if done - last[0] >= 512 * 1024 or done == layer.size:
                last[0] = done
                report(p.transfer("Downloading", ident, done, layer.size))

        return on_bytes

    async def unpack_stored(i: int, layer: Descriptor) -> None:
        if i:
            await committed[i - 1].wait()
        if not await snapshotter.has_layer(diff_ids[: i + 1]):
            report(p.transfer("Extracting", p.short_id(layer.digest), 0, layer.size))
            await snapshotter.apply_layer(diff_ids[: i + 1], str(store.blobs.path(layer.digest)))
            report(p.status("Pull complete", p.short_id(layer.digest)))

    async def download_following(i: int, layer: Descriptor) -> bool:
        """Download a layer and unpack it as it arrives; False if it must be unpacked from the blob."""
        ident = p.short_id(layer.digest)
        send, receive = trio.open_memory_channel[tuple[int, bool]](math.inf)
        following = True

        def stop_following() -> None:
            nonlocal following
            following = False

        def feed(done: int) -> None:
            if following:
                send.send_nowait((done, False))

        async with trio.open_nursery() as unpacking:
            async with limiter:
                source = str(store.partial_path(layer.digest))
                before = committed[i - 1].wait if i else None
                if await unpacking.start(partial(growing, diff_ids[: i + 1], source, receive, before_commit=before)):
                    following = False  # unpacked already (by a concurrent pull)
                downloaded = await fetch_to_store(store, client, ref.path, layer, progress(layer, feed), stop_following)
                if downloaded:
                    report(p.status("Download complete", ident))
                if downloaded and following:
                    report(p.transfer("Extracting", ident, 0, layer.size))
                    send.send_nowait((await trio.to_thread.run_sync(store.blobs.size, layer.digest), True))
                    unpacked = True
                else:
                    unpacking.cancel_scope.cancel()
                    unpacked = False
        if unpacked:
            report(p.status("Pull complete", ident))
        return unpacked

    async def layer_task(i: int, layer: Descriptor) -> None:
        ident = p.short_id(layer.digest)
        if store.blobs.has(layer.digest):
            report(p.status("Already exists", ident))
            await unpack_stored(i, layer)
        else:
            report(p.status("Pulling fs layer", ident))
            if growing is not None and layer.size >= _FOLLOW_MIN and not await snapshotter.has_layer(diff_ids[: i + 1]):
                unpacked = await download_following(i, layer)
            else:
                async with limiter:
                    if await fetch_to_store(store, client, ref.path, layer, progress(layer)):
                        report(p.status("Download complete", ident))
                unpacked = False
            if not unpacked:
                await unpack_stored(i, layer)
        committed[i].set()

    try:
        async with trio.open_nursery() as nursery:
            for i, layer in enumerate(layers):
                nursery.start_soon(layer_task, i, layer)
    except BaseExceptionGroup as group:
        error = p.first_error(group)
        if error is group:
            raise
        raise error from None
