"""The engine's networking glue over a fake network provider."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.errors import InvalidArgument
from shoal.plugins.engine import networking
from shoal.slots import Endpoint


class FakeNetworks:
    def __init__(self, names: list[str]) -> None:
        self.names = names

    async def inspect_network(self, ref: str) -> dict[str, Any]:
        from shoal.errors import NotFound

        if ref not in self.names:
            raise NotFound(f"network {ref} not found")
        return {"Name": ref, "Id": ref * 4}


async def test_check_records_requests_and_refuses_what_docker_refuses() -> None:
    fake = FakeNetworks(["bridge", "app", "db"])
    body = {"NetworkingConfig": {"EndpointsConfig": {"app": {"Aliases": ["web"]}, "db": {"IPAMConfig": {"IPv4Address": "10.0.0.9"}}}}}
    settings, warnings = await networking.check(fake, body, {"NetworkMode": "app"})
    assert list(settings["Networks"]) == ["app", "db"] and warnings == []
    assert settings["Networks"]["app"]["Aliases"] == ["web"]
    with pytest.raises(InvalidArgument, match="user defined networks only"):
        await networking.check(fake, {"NetworkingConfig": {"EndpointsConfig": {"bridge": {"IPAMConfig": {"IPv4Address": "1.2.3.4"}}}}},
                               {"NetworkMode": "default"})  # fmt: skip
    settings, _ = await networking.check(fake, {}, {"NetworkMode": "none"})
    assert list(settings["Networks"]) == ["none"]
    settings, warnings = await networking.check(None, {}, {"NetworkMode": "default"})
    assert settings["Networks"] == {} and "only lo" in warnings[0]


def test_embedded_dns_becomes_the_nameserver_and_ports_are_docker_shaped() -> None:
    ep = Endpoint("app", "c", "v", "10.0.0.2", "10.0.0.1", "02:42:0a:00:00:02", nameserver="127.0.0.11",
                  ports=({"proto": "tcp", "container_port": 80, "host_ip": "", "host_port": 8080},))  # fmt: skip
    host = networking.etc_host({"Dns": ["9.9.9.9"], "DnsOptions": ["rotate"]}, [ep])
    assert host["Dns"] == ["127.0.0.11"] and host["DnsOptions"] == ["rotate", "ndots:0"]
    assert networking.etc_host({"Dns": []}, [Endpoint("bridge", "c", "v", "10.0.0.2", None, None)]) == {"Dns": []}
    assert networking.docker_ports(ep.ports, {"80/tcp": {}, "53/udp": {}}) == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
        "53/udp": None,
    }
