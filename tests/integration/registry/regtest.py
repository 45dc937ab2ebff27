"""Helpers for the registry tests: test images as OCI layouts, peers, a registry shoald."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shoal.presets import preset_dir
from shoaltest import BUSYBOX, Daemon, make_busybox_rootfs, run_daemon


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s")


def ensure_packages(*packages: str) -> None:
    """apt-get install missing Debian packages; skip the test if that fails."""
    missing = [p for p in packages if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                                                     text=True).stdout.find("install ok installed") < 0]  # fmt: skip
    if not missing:
        return
    if os.geteuid() != 0:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env, capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot install {', '.join(missing)}: {result.stderr.decode()[-300:]}")


def _tar_bytes(root: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in sorted(root.iterdir()):
            archive.add(entry, arcname=entry.name)
    return buffer.getvalue()


def _blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return "sha256:" + digest, len(data)


def make_oci_layout(layout: Path, extra: dict[str, bytes] | None = None, padding: int = 0, cmd: tuple[str, ...] = ("sh",)) -> dict:
    """An OCI image layout of a busybox image (plus a layer of ``extra`` files and ``padding`` random bytes)."""
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed")
    work = layout.with_name(layout.name + "-work")
    make_busybox_rootfs(work / "fs")
    tars = [_tar_bytes(work / "fs")]
    if extra or padding:
        (work / "extra").mkdir()
        for name, data in (extra or {}).items():
            (work / "extra" / name).write_bytes(data)
        if padding:
            (work / "extra" / "padding.bin").write_bytes(os.urandom(padding))
        tars.append(_tar_bytes(work / "extra"))
    shutil.rmtree(work)
    layout.mkdir(parents=True, exist_ok=True)
    layers = [_blob(layout, gzip.compress(t, compresslevel=1, mtime=0)) for t in tars]
    config = {
        "architecture": "amd64" if os.uname().machine == "x86_64" else "arm64", "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": list(cmd), "Env": ["PATH=/bin", "FROM_IMAGE=yes"], "WorkingDir": "/tmp", "Labels": {"test": "1"}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"step {i}"} for i in range(len(tars))],
    }  # fmt: skip
    config_digest, config_size = _blob(layout, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s} for d, s in layers],
    }  # fmt: skip
    raw = json.dumps(manifest).encode()
    manifest_digest, manifest_size = _blob(layout, raw)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": manifest["mediaType"], "digest": manifest_digest, "size": manifest_size,
         "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))  # fmt: skip
    return {"manifest": manifest_digest, "config": config_digest, "layers": [d for d, _ in layers], "raw": raw}


def skopeo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result


def registry_config(tmp: Path, port: int, extra: str = "") -> Path:
    """A shoald config serving the registry plugin on ``port``."""
    config = tmp / "registry.toml"
    config.write_text(f'version = 1\n[load]\nenable = ["registry"]\n[plugins.registry]\naddress = "127.0.0.1:{port}"\n{extra}')
    return config


@contextmanager
def shoal_registry(tmp: Path, extra: str = "") -> Iterator[tuple[Daemon, int]]:
    port = free_port()
    with run_daemon(registry_config(tmp, port, extra), tmp) as daemon:
        daemon.wait_ready()
        yield daemon, port


@contextmanager
def docker_registry(tmp: Path, htpasswd: Path | None = None) -> Iterator[int]:
    """Debian's reference registry on a free loopback port with its own storage."""
    ensure_packages("docker-registry")
    port = free_port()
    auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {htpasswd}\n" if htpasswd else ""
    config = tmp / "docker-registry.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {tmp / 'dr-storage'}\n"
        f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}"
    )
    log = open(tmp / "docker-registry.log", "w")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def engine_config(tmp: Path, extra: str = "") -> Path:
    """A one-host shoald config with its own cgroup parent."""
    import secrets

    config = tmp / "shoal.toml"
    config.write_text(f'extend = "{preset_dir() / "default.toml"}"\n[plugins.cgroups]\nparent = "shoal-test-{secrets.token_hex(4)}"\n{extra}')
    return config
