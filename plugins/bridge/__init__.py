"""Bridge networks for containers: the default ``bridge`` network and user-defined ones, with
IPAM persisted in the store, veth pairs, outbound NAT and published ports in shoal's own
nftables table, and an embedded DNS responder for user-defined networks."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from shoal import Plugin, PluginContext, setting


@dataclass(frozen=True)
class BridgeConfig:
    """Settings of the bridge network driver."""

    bridge: str = setting("shoal0", "Link name of the default bridge network's bridge (like docker0).")
    default_subnet: str = setting("172.17.0.0/16", "Subnet of the default bridge network.")
    pools: list[str] = setting(
        factory=lambda: ["172.18.0.0/16", "172.19.0.0/16", "172.20.0.0/14:16", "172.24.0.0/14:16",
                         "172.28.0.0/14:16", "192.168.0.0/16:20"],  # fmt: skip
        doc='Address pools of user-defined networks, "BASE/PREFIX:SIZE" (subnets of /SIZE taken in order).',
    )
    bridge_prefix: str = setting("shbr-", "Name prefix of user-defined networks' bridges (links shoal owns).")
    veth_prefix: str = setting("shv", "Name prefix of the host ends of container veth pairs (links shoal owns).")
    table: str = setting("shoal", "Name of shoal's nftables table (family ip).")
    mtu: int = setting(1500, "MTU of bridges and container interfaces.")
    port_range: str = setting("49153-60999", "Host ports handed out for -P and -p CONTAINER_PORT.")
    dns_upstreams: list[str] = setting(factory=list, doc="Resolvers the embedded DNS forwards to; empty: the host's.")
    pool_size: int = setting(4, "Network namespaces with a veth pair kept ready for starting containers (0: none).")
    spare_prefix: str = setting("shs", "Name prefix of the host ends of the ready veth pairs (links shoal owns).")
    remove_on_exit: bool = setting(True, "At shutdown, remove the bridges and the rules when no container is attached.")


def probe(config: BridgeConfig) -> str | None:
    if os.geteuid() != 0:
        return "needs root (netlink and nftables)"
    if shutil.which("nft") is None:
        return "the nft command is not installed (apt-get install nftables)"
    return None


@asynccontextmanager
async def setup(ctx: PluginContext) -> AsyncIterator[object]:
    from .driver import BridgeDriver, BridgeSettings

    config: BridgeConfig = ctx.config
    low, _, high = config.port_range.partition("-")
    settings = BridgeSettings(
        bridge=config.bridge,
        default_subnet=config.default_subnet,
        pools=tuple(config.pools),
        bridge_prefix=config.bridge_prefix,
        veth_prefix=config.veth_prefix,
        table=config.table,
        mtu=config.mtu,
        port_range=(int(low), int(high or low)),
        dns_upstreams=tuple(config.dns_upstreams),
        remove_on_exit=config.remove_on_exit,
        pool_size=config.pool_size,
        spare_prefix=config.spare_prefix,
    )
    driver = BridgeDriver(ctx.slot("store"), settings)
    await driver.start()
    ctx.add_service("bridge", driver.run)
    try:
        yield driver
    finally:
        await driver.close()


plugin = Plugin(
    name="bridge",
    summary="Bridge networks: IPAM, veth pairs, NAT and published ports (nftables), embedded DNS.",
    slot="network",
    requires=("store",),
    config=BridgeConfig,
    setup=setup,
    probe=probe,
)
