"""Pure logic of the registry client: manifests, platforms, challenges, credentials, progress."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from shoal.errors import InvalidArgument
from shoal.plugins.images import credentials, progress
from shoal.plugins.images.distribution import TransportOptions, is_insecure
from shoal.plugins.images.manifests import DOCKER_LIST, parse_manifest, select_platform

D = "sha256:" + "a" * 64


def entry(arch: str, variant: str = "", digest: str = D) -> dict:
    platform = {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}
    return {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": digest, "size": 1, "platform": platform}


def test_platform_selection_prefers_exact_variant() -> None:
    listing = parse_manifest(json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        entry("arm", "v6", "sha256:" + "1" * 64), entry("arm", "v7", "sha256:" + "2" * 64),
        entry("arm64", "", "sha256:" + "3" * 64), entry("arm64", "v8", "sha256:" + "4" * 64), entry("amd64", "", "sha256:" + "5" * 64),
    ]}).encode())  # fmt: skip
    assert listing.is_index
    assert select_platform(listing.entries, {"os": "linux", "architecture": "arm64", "variant": "v8"}).digest == "sha256:" + "4" * 64
    assert select_platform(listing.entries, {"os": "linux", "architecture": "arm", "variant": "v7"}).digest == "sha256:" + "2" * 64
    assert select_platform(listing.entries, {"os": "linux", "architecture": "amd64"}).digest == "sha256:" + "5" * 64
    with pytest.raises(InvalidArgument, match="no matching manifest for linux/s390x"):
        select_platform(listing.entries, {"os": "linux", "architecture": "s390x"})


@pytest.mark.parametrize("raw, message", [
    (b"{", "not valid JSON"),
    (b"[]", "not a JSON object"),
    (b'{"schemaVersion": 1}', "schemaVersion"),
    (b'{"schemaVersion": 2, "mediaType": "text/plain"}', "unknown manifest media type"),
    (b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:zz", "size": 1}, "layers": []}', "malformed digest"),
    (b'{"schemaVersion": 2, "manifests": 3}', "manifests"),
])  # fmt: skip
def test_bad_manifests_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_manifest(raw)


def test_challenge_parsing() -> None:
    [bearer] = credentials.parse_challenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"')
    assert bearer.scheme == "bearer"
    assert bearer.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io", "scope": "repository:library/busybox:pull"}
    [basic] = credentials.parse_challenges('Basic realm="x, y"')
    assert basic.scheme == "basic" and basic.params == {"realm": "x, y"}


def test_docker_config_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()}}, "other": 1}))
    assert credentials.lookup("docker.io", path) == credentials.Credentials("hub", "pw")
    credentials.store("127.0.0.1:5000", credentials.Credentials("u", "p:w"), path)
    assert credentials.lookup("127.0.0.1:5000", path) == credentials.Credentials("u", "p:w")
    assert json.loads(path.read_text())["other"] == 1 and path.stat().st_mode & 0o777 == 0o600
    assert credentials.forget("127.0.0.1:5000", path) and not credentials.lookup("127.0.0.1:5000", path)
    assert not credentials.forget("127.0.0.1:5000", path)


def test_x_registry_auth() -> None:
    header = credentials.to_header(credentials.Credentials("u", "p"), "host:5000")
    assert credentials.from_header(header) == credentials.Credentials("u", "p")
    assert credentials.from_header("e30=") is None  # "{}": use the engine's stored credentials
    assert credentials.from_header("") is None
    with pytest.raises(InvalidArgument):
        credentials.from_header("!!!")


def test_insecure_registries() -> None:
    options = TransportOptions(insecure_registries=("myreg:5000", "10.0.0.0/8"))
    assert is_insecure("127.0.0.1:5000", options) and is_insecure("localhost:1", options) and is_insecure("[::1]:5000", options)
    assert is_insecure("myreg:5000", options) and is_insecure("10.1.2.3:443", options)
    assert not is_insecure("docker.io", options) and not is_insecure("myreg:6000", options)


def test_progress_messages() -> None:
    message = progress.transfer("Downloading", "abc", 500_000, 1_000_000)
    assert message["progressDetail"] == {"current": 500_000, "total": 1_000_000}
    assert message["progress"].startswith("[" + "=" * 24 + ">") and message["progress"].endswith("500kB/1MB")
    assert progress.short_id("sha256:" + "0123456789abcdef" * 4) == "0123456789ab"
