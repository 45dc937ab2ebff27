"""OCI image documents: media types, the host platform, configs and manifests.

The store keeps each image as an OCI image manifest pointing at an OCI image config and
gzip layer blobs, serialised once (compact JSON, sorted keys) and stored by digest, so a
registry push can send exactly the bytes whose digests the store already knows.
"""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from shoal.errors import InvalidArgument

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"

#: Fields of an image config's ``config`` section (the OCI spec's, plus Docker's extras).
CONFIG_FIELDS = frozenset({
    "User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
    "StopSignal", "StopTimeout", "Healthcheck", "ArgsEscaped", "OnBuild", "Shell",
})  # fmt: skip

#: Python's machine names -> (OCI architecture, variant).
_ARCHITECTURES = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}


def host_platform() -> dict[str, str]:
    """This host's OCI platform: {"os": "linux", "architecture": "amd64"} (+ "variant")."""
    machine = platform.machine()
    arch, variant = _ARCHITECTURES.get(machine, (machine, ""))
    result = {"os": "linux", "architecture": arch}
    if variant:
        result["variant"] = variant
    return result


def timestamp(moment: datetime | None = None) -> str:
    """An RFC 3339 UTC time as images carry it: "2024-05-07T12:00:00.123456Z"."""
    return (moment or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")


def parse_timestamp(text: str) -> float:
    """Unix seconds of an RFC 3339 time (nanosecond fractions allowed); 0 if unparsable."""
    match = _RFC3339.fullmatch(text or "")
    if not match:
        return 0.0
    base, fraction, zone = match.groups()
    moment = datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone))
    return moment.timestamp() + float("0." + (fraction or "0"))


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """The bytes stored for a document: compact, keys sorted, so equal documents hash equal."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def check_config_fields(fields: Mapping[str, Any]) -> None:
    """Refuse config fields an image config does not have, naming them."""
    unknown = sorted(set(fields) - CONFIG_FIELDS)
    if unknown:
        raise InvalidArgument(f"unknown image config field(s) {', '.join(unknown)}; known: {', '.join(sorted(CONFIG_FIELDS))}")


def image_config(fields: Mapping[str, Any], diff_ids: Sequence[str], created: str, created_by: str, comment: str) -> dict[str, Any]:
    """An OCI image config for this host's platform.

    Args:
        fields: the ``config`` section (Cmd, Env, ...).
        diff_ids: the layers' diff ids, bottom first.
        created: RFC 3339 creation time.
        created_by: the history's "created_by" of the single step.
        comment: the history's comment.
    Returns:
        The config document.
    """
    check_config_fields(fields)
    step: dict[str, Any] = {"created": created, "created_by": created_by}
    if comment:
        step["comment"] = comment
    return {
        **host_platform(),
        "created": created,
        "config": dict(fields),
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [step],
    }


def image_manifest(config: tuple[str, int], layers: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """An OCI image manifest: the config and gzip layer blobs as (digest, size) pairs."""
    return {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config[0], "size": config[1]},
        "layers": [{"mediaType": LAYER_GZIP_TYPE, "digest": d, "size": s} for d, s in layers],
    }
