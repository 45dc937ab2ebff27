"""Image manifests as registries serve them: OCI and Docker schema 2, single and multi-platform.

A registry answers a manifest request with one of four document kinds: an OCI image index
or a Docker manifest list (one entry per platform), or an OCI image manifest or Docker
schema 2 manifest (a config and layers). ``parse_manifest`` checks a document enough that
the puller can rely on its fields; ``select_platform`` picks this host's entry from a list.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shoal.errors import InvalidArgument

from .blobs import check_digest
from .oci import host_platform

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
MANIFEST_TYPES = INDEX_TYPES | IMAGE_TYPES
#: What a client sends in ``Accept`` to get any of them, preferred first.
ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

#: Layer media types and their compression ("gzip", "zstd", "none").
LAYER_TYPES: Mapping[str, str] = {
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "none",
}
#: Largest manifest accepted (the same limit as the reference registry's default).
MAX_MANIFEST = 4 * 1024 * 1024


@dataclass(frozen=True)
class Descriptor:
    """A pointer to content: media type, digest, size (and a platform in an index)."""

    media_type: str
    digest: str
    size: int
    platform: Mapping[str, Any] | None = None
    urls: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The descriptor as it appears in a manifest."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            out["platform"] = dict(self.platform)
        return out


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest document: an index (``entries``) or an image (``config``, ``layers``)."""

    media_type: str
    raw: bytes
    entries: tuple[Descriptor, ...] = ()
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str = ""
    annotations: Mapping[str, str] | None = None

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise InvalidArgument(f"manifest {where} is not an object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str) or not isinstance(size, int) or size < 0:
        raise InvalidArgument(f"manifest {where} lacks a valid mediaType, digest or size")
    try:
        check_digest(digest)
    except InvalidArgument as exc:
        raise InvalidArgument(f"manifest {where}: {exc}") from None
    platform = value.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise InvalidArgument(f"manifest {where} has a malformed platform")
    urls = value.get("urls") or ()
    return Descriptor(media_type, digest, size, platform, tuple(u for u in urls if isinstance(u, str)))


def parse_manifest(raw: bytes, content_type: str = "") -> Manifest:
    """Parse and check a manifest document.

    Args:
        raw: the document's bytes (kept as they are: their digest names the manifest).
        content_type: the media type the registry declared; the document's own
            ``mediaType`` wins when present.
    Returns:
        The manifest. Raises ``InvalidArgument`` for bad JSON, an unknown media type, or
        missing or malformed fields.
    """
    if len(raw) > MAX_MANIFEST:
        raise InvalidArgument(f"manifest is {len(raw)} bytes, more than the {MAX_MANIFEST} accepted")
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidArgument("manifest is not a JSON object")
    if document.get("schemaVersion") != 2:
        raise InvalidArgument(f"unsupported manifest schemaVersion {document.get('schemaVersion')!r} (only 2)")
    media_type = document.get("mediaType") or content_type.split(";")[0].strip()
    if not media_type:  # OCI allows leaving it out: tell the kinds apart by their fields
        media_type = OCI_INDEX if "manifests" in document else OCI_MANIFEST
    if media_type not in MANIFEST_TYPES:
        raise InvalidArgument(f"unknown manifest media type {media_type!r}")
    subject = _descriptor(document["subject"], "subject") if document.get("subject") is not None else None
    annotations = document.get("annotations") if isinstance(document.get("annotations"), dict) else None
    artifact_type = document.get("artifactType") if isinstance(document.get("artifactType"), str) else ""
    if media_type in INDEX_TYPES:
        entries = document.get("manifests")
        if not isinstance(entries, list):
            raise InvalidArgument("manifest list has no 'manifests' array")
        parsed = tuple(_descriptor(e, f"manifests[{i}]") for i, e in enumerate(entries))
        return Manifest(media_type, raw, entries=parsed, subject=subject, artifact_type=artifact_type, annotations=annotations)
    layers = document.get("layers")
    if not isinstance(layers, list):
        raise InvalidArgument("image manifest has no 'layers' array")
    config = _descriptor(document.get("config"), "config")
    if not artifact_type and config.media_type not in (OCI_CONFIG, DOCKER_CONFIG):
        artifact_type = config.media_type
    return Manifest(
        media_type, raw, config=config, layers=tuple(_descriptor(l, f"layers[{i}]") for i, l in enumerate(layers)),
        subject=subject, artifact_type=artifact_type, annotations=annotations,
    )  # fmt: skip


def is_runnable(manifest: Manifest) -> bool:
    """Tell whether an image manifest describes a container image (not another artifact)."""
    return manifest.config is not None and manifest.config.media_type in (OCI_CONFIG, DOCKER_CONFIG)


def layer_compression(layer: Descriptor) -> str:
    """"gzip", "zstd" or "none" for a layer; ``InvalidArgument`` for a media type that is no layer."""
    try:
        return LAYER_TYPES[layer.media_type]
    except KeyError:
        raise InvalidArgument(f"unsupported layer media type {layer.media_type!r}") from None


def select_platform(entries: Sequence[Descriptor], wanted: Mapping[str, str] | None = None) -> Descriptor:
    """Pick the entry of a manifest list for a platform (by default this host's).

    An exact variant match beats an entry without a variant; for arm64 an entry without a
    variant counts as v8. Raises ``NotFound``-like ``InvalidArgument`` when none fits.
    """
    want = dict(wanted or host_platform())
    best: tuple[int, Descriptor] | None = None
    for entry in entries:
        platform = entry.platform or {}
        if platform.get("os") != want.get("os", "linux") or platform.get("architecture") != want["architecture"]:
            continue
        if entry.media_type not in MANIFEST_TYPES:
            continue
        variant, wanted_variant = platform.get("variant", ""), want.get("variant", "")
        if variant == wanted_variant:
            score = 2
        elif not variant:
            score = 1
        else:
            continue
        if best is None or score > best[0]:
            best = (score, entry)
    if best is None:
        label = "/".join(v for v in (want.get("os", "linux"), want["architecture"], want.get("variant", "")) if v)
        offered = ", ".join(
            "/".join(str(v) for v in ((e.platform or {}).get("os"), (e.platform or {}).get("architecture"), (e.platform or {}).get("variant")) if v)
            for e in entries
        )  # fmt: skip
        raise InvalidArgument(f"no matching manifest for {label} in the manifest list entries (offered: {offered or 'none'})")
    return best[1]


def parse_platform(text: str) -> dict[str, str]:
    """"linux/arm64/v8" -> {"os": "linux", "architecture": "arm64", "variant": "v8"}."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidArgument(f"invalid platform {text!r}: expected os/arch[/variant]")
    out = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        out["variant"] = parts[2]
    return out
