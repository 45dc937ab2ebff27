"""The ``docker`` Python SDK against the frontend (in a worker thread; the server runs in trio)."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager

import docker
import pytest
import trio
from fake_engine import Served


@contextmanager
def sdk(served: Served) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=served.url, version="auto", timeout=10)
    try:
        yield client
    finally:
        client.close()


async def in_thread(fn):
    return await trio.to_thread.run_sync(fn)


async def test_ping_version_info(served: Served) -> None:
    def check() -> None:
        with sdk(served) as client:
            assert client.ping() is True
            assert client.version()["ApiVersion"] == "1.50"
            assert client.api.api_version == "1.50"
            assert client.info()["OSType"] == "linux"

    await in_thread(check)


async def test_create_inspect_list_remove(served: Served) -> None:
    def check() -> None:
        with sdk(served) as client:
            c = client.containers.create("img", ["sleep"], name="web")
            assert c.name == "web" and c.status == "created"
            c.start()
            c.reload()
            assert c.status == "running"
            assert [x.name for x in client.containers.list()] == ["web"]
            assert client.containers.list(filters={"name": "nomatch"}) == []
            with pytest.raises(docker.errors.APIError) as err:
                c.remove()
            assert err.value.status_code == 409
            c.stop(timeout=1)
            c.remove()
            with pytest.raises(docker.errors.NotFound):
                client.containers.get("web")

    await in_thread(check)


async def test_run_prints_logs_and_wait_gives_exit_code(served: Served) -> None:
    def check() -> None:
        with sdk(served) as client:
            assert client.containers.run("img", ["echo", "hello", "world"], remove=True) == b"hello world\n"
            c = client.containers.run("img", ["err", "oops", "3"], detach=True)
            assert c.wait() == {"StatusCode": 3}
            assert c.logs(stdout=False, stderr=True) == b"oops\n"
            assert c.logs(stdout=True, stderr=False) == b""
            with pytest.raises(docker.errors.ContainerError) as err:
                client.containers.run("img", ["err", "bad", "5"])
            assert err.value.exit_status == 5

    await in_thread(check)


async def test_wait_sends_its_head_before_the_container_starts(served: Served) -> None:
    def check() -> None:
        with sdk(served) as client:
            c = client.containers.create("img", ["sleep"], name="waited")
        # By hand: the head arrives at once, the body only once the container exits.
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(served.socket)
            s.sendall(b"POST /v1.50/containers/waited/wait?condition=next-exit HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n")
            s.settimeout(5)
            head = s.recv(4096)
            assert head.startswith(b"HTTP/1.1 200 ") and b"\r\n\r\n" in head
            assert head.split(b"\r\n\r\n", 1)[1] == b""
            with sdk(served) as client:
                c.start()
                c.kill()
            body = b""
            while b"StatusCode" not in body or not body.endswith(b"0\r\n\r\n"):
                body += s.recv(4096)
            assert b'{"StatusCode": 137}' in body

    await in_thread(check)


async def test_events_stream_filters(served: Served) -> None:
    def check() -> None:
        since = time.time() - 1
        with sdk(served) as client:
            client.containers.create("img", ["sleep"], name="ev")
            client.containers.get("ev").remove()
            events = list(client.events(since=since, until=time.time() + 0.5, decode=True,
                                        filters={"type": "container", "event": "destroy"}))  # fmt: skip
            assert [(e["Type"], e["Action"], e["Actor"]["Attributes"]["name"]) for e in events] == [
                ("container", "destroy", "ev")
            ]

    await in_thread(check)


async def test_live_events_arrive_while_streaming(served: Served) -> None:
    def check() -> list[str]:
        with sdk(served) as client:
            stream = client.events(decode=True, filters={"container": "live"})
            client.containers.create("img", ["sleep"], name="live")
            client.containers.get("live").start()
            actions = [next(stream)["Action"], next(stream)["Action"]]
            stream.close()
            return actions

    assert await in_thread(check) == ["create", "start"]
    # The closed stream's subscription goes away.
    for _ in range(100):
        if served.api.event_listeners == 0:
            break
        await trio.sleep(0.01)
    assert served.api.event_listeners == 0


async def test_attach_without_tty_is_multiplexed(served: Served) -> None:
    def check() -> None:
        with sdk(served) as client:
            c = client.containers.create("img", ["cat"], stdin_open=True, name="cat")
            sock = client.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            raw = sock._sock
            c.start()
            raw.sendall(b"ping\n")
            raw.shutdown(socket.SHUT_WR)  # half-close: stdin ends, output keeps flowing
            data = b""
            raw.settimeout(5)
            while chunk := raw.recv(4096):
                data += chunk
            assert data[:8] == struct.pack(">BxxxL", 1, 5) and data[8:] == b"ping\n"
            sock.close()
            assert c.wait() == {"StatusCode": 0}

    await in_thread(check)


# The SDK's exec_run leaves its hijacked socket for the garbage collector to close.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_exec_runs_with_framing_and_tty(served: Served) -> None:
    def check() -> None:
        with sdk(served) as client:
            c = client.containers.run("img", ["sleep"], detach=True)
            assert c.exec_run(["echo", "in", "exec"]) == (0, b"in exec\n")
            code, (out, err) = c.exec_run(["err", "to-stderr", "2"], demux=True)
            assert (out, err) == (None, b"to-stderr\n")
            assert c.exec_run(["echo", "tty"], tty=True).output == b"tty\n"
            exec_id = client.api.exec_create(c.id, ["sleep"])["Id"]
            assert client.api.exec_start(exec_id, detach=True) == ""
            assert client.api.exec_inspect(exec_id)["Running"] is True
            with pytest.raises(docker.errors.NotFound):
                client.api.exec_inspect("nope")

    await in_thread(check)


async def test_logs_follow_and_tail_and_stats(served: Served) -> None:
    def check() -> None:
        with sdk(served) as client:
            c = client.containers.run("img", ["echo", "a"], detach=True, tty=True)
            c.wait()
            assert c.logs(tail=1) == b"a\n"
            assert c.logs(tail=0) == b""
            assert c.logs(timestamps=True).startswith(b"2024-01-01T")
            s = client.containers.run("img", ["sleep"], detach=True)
            one = s.stats(stream=False, one_shot=True)
            assert one["precpu_stats"] == {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0}
            stream = s.stats(decode=True)
            first, second = next(stream), next(stream)
            stream.close()
            assert second["precpu_stats"] == first["cpu_stats"]
            assert second["preread"] == first["read"]
            paired = s.stats(stream=False)
            assert paired["precpu_stats"]["cpu_usage"]["total_usage"] > 0
            assert s.top()["Titles"] == ["PID", "CMD"]
            s.rename("renamed")
            assert client.containers.get("renamed").id == s.id
            assert client.containers.prune()["ContainersDeleted"] == [c.id]

    await in_thread(check)
