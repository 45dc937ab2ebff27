"""Fixtures: a real engine with the bridge plugin on test-only bridges, subnets and table.

Every name the driver makes (bridges, veths, nftables table) carries a random per-test tag,
and subnets come from 10.2xx.0.0/16, so tests never touch links, rules or addresses of
anything else on this machine.
"""

from __future__ import annotations

import random
import secrets
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from shoal import open_engine
from shoal.config import parse_config
from shoaltest import ensure_image, remove_all_containers, remove_cgroup_parent

IMAGE = "busybox:test"


class Names:
    """The test's own link names, table and subnets."""

    def __init__(self) -> None:
        tag = secrets.token_hex(2)
        self.bridge = f"s{tag}b0"
        self.bridge_prefix = f"s{tag}n"
        self.veth_prefix = f"s{tag}v"
        self.spare_prefix = f"s{tag}s"
        self.table = f"shoal_t{tag}"
        octet = random.randrange(200, 250)
        self.default_subnet = f"10.{octet}.0.0/24"
        self.pool = f"10.{octet}.16.0/20:24"
        self.octet = octet

    def bridge_settings(self) -> str:
        """The ``[plugins.bridge]`` table that keeps the driver to these names (TOML)."""
        return f"""[plugins.bridge]
bridge = "{self.bridge}"
default_subnet = "{self.default_subnet}"
pools = ["{self.pool}"]
bridge_prefix = "{self.bridge_prefix}"
veth_prefix = "{self.veth_prefix}"
spare_prefix = "{self.spare_prefix}"
table = "{self.table}"
dns_upstreams = ["127.0.0.1:9"]
remove_on_exit = true
"""

    def links(self) -> list[str]:
        out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
        names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
        return [n for n in names if n.startswith((self.bridge, self.bridge_prefix, self.veth_prefix, self.spare_prefix))]

    def table_exists(self) -> bool:
        out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
        return f"table ip {self.table}" in out.split("\n")

    def cleanup(self) -> None:
        for name in self.links():
            subprocess.run(["ip", "link", "del", name], capture_output=True)
        subprocess.run(["nft", "delete", "table", "ip", self.table], capture_output=True)


def engine_config(data: Path, cgroup_parent: str, names: Names) -> str:
    return f"""
[engine]
data_root = "{data}"
run_root = "{data}/run"
[load]
enable = ["sqlite", "local-membership", "namespaces", "cgroups", "images", "overlay", "local-volumes", "bridge", "engine"]
[plugins.cgroups]
parent = "{cgroup_parent}"
[plugins.sqlite]
synchronous = "normal"
{names.bridge_settings()}port_range = "43000-43999"
"""


class Harness:
    """Opens (and re-opens, for restart tests) an engine on one data root."""

    def __init__(self, data: Path, busybox: Path) -> None:
        self.data = data
        self.busybox = busybox
        self.cgroup_parent = f"shoal-test-{secrets.token_hex(4)}"
        self.names = Names()

    @asynccontextmanager
    async def open(self) -> AsyncIterator[object]:
        config = parse_config(engine_config(self.data, self.cgroup_parent, self.names))
        async with open_engine(config) as engine:
            await ensure_image(engine, IMAGE, self.busybox, {"Cmd": ["sh"], "ExposedPorts": {"80/tcp": {}}})
            yield engine


@pytest.fixture
async def harness(tmp_path: Path, busybox_dir: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path / "data", busybox_dir)
    yield h
    async with h.open() as engine:
        await remove_all_containers(engine)
        network = engine.slot("network")  # type: ignore[attr-defined]
        await network.prune_networks()
    leftovers = h.names.links(), h.names.table_exists()
    h.names.cleanup()
    remove_cgroup_parent(h.cgroup_parent)
    assert leftovers == ([], False), f"left behind: {leftovers}"


@pytest.fixture
async def engine(harness: Harness) -> AsyncIterator[object]:
    async with harness.open() as engine:
        yield engine


async def run_in(engine: object, name: str, cmd: str, network: str = "default", **host: object) -> str:
    """Create and start a detached busybox container running ``sh -c cmd``; its id."""
    containers = engine.slot("containers")  # type: ignore[attr-defined]
    body = {"Image": IMAGE, "Cmd": ["sh", "-c", cmd], "HostConfig": {"NetworkMode": network, **host}}
    created = await containers.create(body, name)
    await containers.start(created["Id"])
    return created["Id"]


async def output(engine: object, cid: str, timeout: float = 10) -> tuple[int, str]:
    """Wait for a container to exit; its exit code and output."""
    containers = engine.slot("containers")  # type: ignore[attr-defined]
    with trio.fail_after(timeout):
        result = await containers.wait(cid)
    chunks = [data async for _, data in containers.logs(cid)]
    return result["StatusCode"], b"".join(chunks).decode()
