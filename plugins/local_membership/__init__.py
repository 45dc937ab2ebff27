"""The membership of a single host: just this node, always alive."""

from __future__ import annotations

from dataclasses import dataclass

from shoal import Plugin, PluginContext, setting


@dataclass(frozen=True)
class LocalMembershipConfig:
    node_id: str = setting("", "This node's id; empty: derived from the machine id, else the hostname.")
    address: str = setting("127.0.0.1", "Address other components may reach this node at.")


async def setup(ctx: PluginContext) -> object:
    from .membership import LocalMembership

    return LocalMembership.from_config(ctx.config)


plugin = Plugin(
    name="local-membership",
    summary="Single-host membership: this node alone.",
    slot="membership",
    config=LocalMembershipConfig,
    setup=setup,
)
