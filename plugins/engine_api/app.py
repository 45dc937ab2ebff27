"""What the endpoints share (the slots they serve), and the complete route table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import containers_api, images_api, networks_api, system, volumes_api
from .routes import RouteTable

if TYPE_CHECKING:
    from shoal.containers import Containers
    from shoal.events import EventBus
    from shoal.kernel import Engine
    from shoal.slots import ImageStore, VolumeStore


@dataclass
class Api:
    """The engine parts the frontend translates requests into calls on."""

    containers: Containers
    events: EventBus
    images: ImageStore | None = None
    volumes: VolumeStore | None = None
    data_root: Path = field(default_factory=lambda: Path("/var/lib/shoal"))
    #: The running engine, known once it reports ready (for ``/info``'s driver names).
    engine: Engine | None = None
    #: Seconds between the samples of a stats stream.
    stats_interval: float = 1.0
    #: Open ``/events`` streams, for ``/info``.
    event_listeners: int = 0

    def slot_providers(self) -> dict[str, str]:
        """Slot -> name of the plugin filling it, for the slots that are filled."""
        if self.engine is None:
            return {}
        return {slot: name for slot, name in self.engine.config.slots.items() if self.engine.has_slot(slot)}


def build_routes(api: Api, hook: Any = None) -> RouteTable:
    """Every built-in endpoint, then those other plugins add through ``shoal_api_routes``."""
    routes = RouteTable()
    system.register(routes, api)
    containers_api.register(routes, api)
    images_api.register(routes, api)
    volumes_api.register(routes, api)
    networks_api.register(routes, api)
    if hook is not None:
        hook.shoal_api_routes(routes=routes)
    return routes
