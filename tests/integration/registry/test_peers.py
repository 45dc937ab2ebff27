"""Real peers: skopeo against the shoal registry, shoald against Debian's docker-registry
(with and without Basic auth), and the docker CLI against shoald."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from regtest import docker_registry, engine_config, ensure_packages, make_oci_layout, shoal_registry, skopeo
from shoaltest import Daemon, run_daemon

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("image") / "layout"
    return path, make_oci_layout(path, extra={"greeting": b"hello from the registry\n"}, cmd=("cat", "/greeting"))


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, dict[str, str]]]:
    if not shutil.which("docker"):
        pytest.skip("the docker CLI is not installed")
    tmp = tmp_path_factory.mktemp("engine")
    with run_daemon(engine_config(tmp), tmp) as daemon:
        daemon.wait_ready()
        env = {**os.environ, "DOCKER_HOST": f"unix://{tmp / 'run' / 'shoal.sock'}", "DOCKER_CONFIG": str(tmp / "docker-config")}
        yield daemon, env
        for container in docker(env, "ps", "-aq").split():
            docker(env, "rm", "-f", container)
    assert daemon.returncode == 0, daemon.log


def docker(env: dict[str, str], *args: str, input: bytes | None = None) -> str:
    result = subprocess.run(["docker", *args], env=env, capture_output=True, input=input, timeout=120)
    assert result.returncode == 0, (args, result.stderr.decode(), result.stdout.decode()[-2000:])
    return result.stdout.decode(errors="replace")


def test_skopeo_copies_into_the_shoal_registry_and_back(tmp_path: Path, layout: tuple[Path, dict]) -> None:
    ensure_packages("skopeo")
    source, image = layout
    with shoal_registry(tmp_path) as (daemon, port):
        target = f"docker://127.0.0.1:{port}/test/busybox:1"
        skopeo("copy", "--dest-tls-verify=false", f"oci:{source}", target)
        skopeo("copy", "--src-tls-verify=false", target, f"oci:{tmp_path / 'back'}")
        inspected = json.loads(skopeo("inspect", "--tls-verify=false", "--raw", target).stdout)
        tags = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://127.0.0.1:{port}/test/busybox").stdout)
    assert inspected["config"]["digest"] == image["config"] and tags["Tags"] == ["1"]
    back = json.loads((tmp_path / "back" / "index.json").read_text())
    assert back["manifests"][0]["digest"] == image["manifest"]
    stored = tmp_path / "data" / "plugins" / "registry" / "blobs" / "sha256"
    for digest in [image["manifest"], image["config"], *image["layers"]]:
        name = digest.removeprefix("sha256:")
        original = (source / "blobs" / "sha256" / name).read_bytes()
        assert (tmp_path / "back" / "blobs" / "sha256" / name).read_bytes() == original
        assert (stored / name).read_bytes() == original


@pytest.mark.parametrize("auth", [False, True], ids=["anonymous", "basic-auth"])
def test_shoald_pulls_from_and_pushes_to_docker_registry(tmp_path: Path, layout: tuple[Path, dict], engine: tuple[Daemon, dict[str, str]], auth: bool) -> None:
    ensure_packages("skopeo")
    source, image = layout
    _, env = engine
    htpasswd = None
    if auth:
        ensure_packages("apache2-utils")
        htpasswd = tmp_path / "htpasswd"
        htpasswd.write_text(subprocess.run(["htpasswd", "-Bbn", "tester", "s3cret"], capture_output=True, text=True, check=True).stdout)
    with docker_registry(tmp_path, htpasswd) as port:
        host = f"127.0.0.1:{port}"
        creds = ["--dest-creds", "tester:s3cret"] if auth else []
        skopeo("copy", "--dest-tls-verify=false", *creds, f"oci:{source}", f"docker://{host}/lib/bb:v1")
        if auth:
            failed = subprocess.run(["docker", "pull", f"{host}/lib/bb:v1"], env=env, capture_output=True, text=True)
            assert failed.returncode != 0 and "401" in failed.stderr + failed.stdout or "auth" in (failed.stderr + failed.stdout).lower()
            docker(env, "login", "-u", "tester", "--password-stdin", host, input=b"s3cret")
        out = docker(env, "pull", f"{host}/lib/bb:v1")
        assert f"Digest: {image['manifest']}" in out
        assert docker(env, "run", "--rm", f"{host}/lib/bb:v1") == "hello from the registry\n"
        docker(env, "tag", f"{host}/lib/bb:v1", f"{host}/copy/bb:v2")
        pushed = docker(env, "push", f"{host}/copy/bb:v2")
        assert f"v2: digest: {image['manifest']}" in pushed
        read_creds = ["--creds", "tester:s3cret"] if auth else []
        raw = json.loads(skopeo("inspect", "--tls-verify=false", *read_creds, "--raw", f"docker://{host}/copy/bb:v2").stdout)
        assert raw["config"]["digest"] == image["config"]
        docker(env, "rmi", f"{host}/lib/bb:v1", f"{host}/copy/bb:v2")
        if auth:
            docker(env, "logout", host)


def test_docker_cli_against_shoald_and_its_registry(tmp_path: Path, layout: tuple[Path, dict], engine: tuple[Daemon, dict[str, str]]) -> None:
    ensure_packages("skopeo")
    source, image = layout
    _, env = engine
    with shoal_registry(tmp_path) as (_, port):
        name = f"127.0.0.1:{port}/busybox"
        skopeo("copy", "--dest-tls-verify=false", f"oci:{source}", f"docker://{name}:latest")
        out = docker(env, "pull", name)
        assert f"Status: Downloaded newer image for {name}:latest" in out
        assert name in docker(env, "images", "--format", "{{.Repository}}:{{.Tag}}")
        assert docker(env, "run", "--rm", name) == "hello from the registry\n"
        assert docker(env, "run", "--rm", name, "sh", "-c", "echo $FROM_IMAGE $(pwd)") == "yes /tmp\n"
        docker(env, "tag", name, f"127.0.0.1:{port}/pushed/bb:1")
        assert "Mounted from busybox" in docker(env, "push", f"127.0.0.1:{port}/pushed/bb:1")
        history = docker(env, "image", "history", "--format", "{{.CreatedBy}}", name)
        assert history.split() == ["step", "1", "step", "0"]
        saved = subprocess.run(["docker", "save", name], env=env, capture_output=True, check=True).stdout
        docker(env, "rmi", name, f"127.0.0.1:{port}/pushed/bb:1")
        assert "Loaded image: " + name + ":latest" in docker(env, "load", input=saved)
        assert docker(env, "run", "--rm", name) == "hello from the registry\n"
        inspect = json.loads(docker(env, "image", "inspect", name))[0]
        assert inspect["Id"] == image["config"] and inspect["Config"]["Cmd"] == ["cat", "/greeting"]
        docker(env, "rmi", name)
