"""The engine-api plugin inside a real kernel: config, service start-up, socket life cycle, hooks."""

from __future__ import annotations

import json
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from shoal import open_engine
from shoal.catalog import Catalog

HERE = Path(__file__).resolve().parent


@pytest.fixture
def roots() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="eapi-int-", dir="/tmp"))  # short: unix socket path limit
    yield path
    shutil.rmtree(path, ignore_errors=True)


def plugin_set(roots: Path, extra: str = "", modules: list[str] | None = None) -> Path:
    builtin = "engine-api" in Catalog.discover().entries
    modules = [str(HERE / "fake_containers_plugin.py"), *(modules or [])]
    modules += [] if builtin else ["shoal.plugins.engine_api"]
    config = roots / "set.toml"
    enable = json.dumps(["engine-api"] if builtin else [])
    config.write_text(
        "version = 1\n"
        f'[engine]\ndata_root = "{roots / "data"}"\nrun_root = "{roots / "run"}"\n'
        f"[load]\nenable = {enable}\nmodules = {json.dumps(modules)}\n"
        '[slots]\ncontainers = "fake-containers"\n'
        f"{extra}"
    )
    return config


async def test_serves_on_the_run_root_socket_and_removes_it(roots: Path) -> None:
    (roots / "run").mkdir()
    stale = roots / "run" / "shoal.sock"
    sock = trio.socket.socket(trio.socket.AF_UNIX)
    await sock.bind(str(stale))  # a stale socket file from an earlier run
    sock.close()
    async with open_engine(plugin_set(roots)) as engine:
        assert engine.statuses["engine-api"].state == "ok"
        assert stat.S_IMODE(stale.stat().st_mode) == 0o660
        transport = httpx.AsyncHTTPTransport(uds=str(stale))
        async with httpx.AsyncClient(transport=transport, base_url="http://d") as client:
            assert (await client.get("/_ping")).text == "OK"
            await client.post("/containers/create", json={"Image": "img"}, params={"name": "x"})
            info = (await client.get("/v1.50/info")).json()
            assert info["Containers"] == 1 and info["DockerRootDir"] == str(roots / "data")
    assert not stale.exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_other_plugins_add_routes_and_tcp_listens(roots: Path) -> None:
    port = free_port()
    config = plugin_set(
        roots,
        '[plugins.engine-api]\nsocket = "{}"\ntcp = "127.0.0.1:{}"\n'.format(roots / "api.sock", port),
        modules=[str(HERE / "extra_routes_plugin.py")],
    )
    async with open_engine(config):
        transport = httpx.AsyncHTTPTransport(uds=str(roots / "api.sock"))
        async with httpx.AsyncClient(transport=transport, base_url="http://d") as client:
            assert (await client.get("/v1.44/hello/you")).json() == {"hello": "you", "version": "1.44"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/_ping")).text == "OK"
