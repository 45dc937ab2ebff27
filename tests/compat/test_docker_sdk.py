"""The docker Python SDK drives shoald through the Engine API."""

from __future__ import annotations

import time

import docker
import pytest
from docker.errors import APIError, ContainerError, ImageNotFound, NotFound

from compat_support import IMAGE

pytestmark = pytest.mark.root


@pytest.fixture
def client(shoald):
    c = docker.DockerClient(base_url=f"unix://{shoald.socket}")
    yield c
    c.close()


def test_ping_version_info(client) -> None:
    assert client.ping() is True
    assert client.version()["ApiVersion"] == "1.50"
    info = client.info()
    assert info["OSType"] == "linux" and info["Images"] >= 1


def test_run_returns_output_and_raises_on_failure(client) -> None:
    assert client.containers.run(IMAGE, ["echo", "hi"], remove=True) == b"hi\n"
    with pytest.raises(ContainerError) as info:
        client.containers.run(IMAGE, ["sh", "-c", "echo bad >&2; exit 4"], remove=True, stderr=True)
    assert info.value.exit_status == 4 and b"bad" in info.value.stderr


def test_detached_lifecycle(client) -> None:
    container = client.containers.run(IMAGE, ["sh", "-c", "trap 'exit 0' TERM; while true; do echo up; sleep 0.2; done"],
                                      detach=True, name="sdk-web", mem_limit="64m", pids_limit=50)  # fmt: skip
    container.reload()
    assert container.status == "running" and container.attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert [c.name for c in client.containers.list()] == ["sdk-web"]
    code, out = container.exec_run(["sh", "-c", "echo $((1+2)); exit 2"])
    assert (code, out) == (2, b"3\n")
    stats = container.stats(stream=False)
    assert stats["memory_stats"]["limit"] == 64 * 1024 * 1024 and stats["pids_stats"]["current"] >= 1
    time.sleep(0.5)
    assert container.logs().startswith(b"up\nup\n")
    container.pause()
    container.reload()
    assert container.status == "paused"
    container.unpause()
    container.stop(timeout=5)
    assert container.wait()["StatusCode"] == 0
    container.remove()
    with pytest.raises(NotFound):
        client.containers.get("sdk-web")


def test_errors_carry_docker_status_codes(client) -> None:
    with pytest.raises(ImageNotFound):
        client.containers.create("nosuch:image", ["true"])
    with pytest.raises(APIError) as info:
        client.containers.create(IMAGE, ["true"], cap_add=["FLY"])
    assert info.value.status_code == 400
    with pytest.raises(NotFound):
        client.containers.get("no-such-container")
