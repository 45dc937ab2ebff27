"""The three plugins' declarations, and their setup through a plugin context."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from shoal import PluginContext
from shoal.errors import InvalidArgument
from shoal.events import EventBus
from shoal.plugins.images import ImagesConfig
from shoal.plugins.images import plugin as images_plugin
from shoal.plugins.overlay import OverlayConfig, probe
from shoal.plugins.overlay import plugin as overlay_plugin
from shoal.plugins.volumes import LocalVolumesConfig
from shoal.plugins.volumes import plugin as volumes_plugin
from shoal.slots import ImageStore, Snapshotter, VolumeStore


def context(plugin, config, root: Path, slots: dict | None = None) -> PluginContext:
    return PluginContext(
        plugin=plugin, config=config, data_root=root, run_root=root / "run", events=EventBus(),
        hook=None, _slots=slots or {}, _add_hooks=lambda p, o: None,
    )  # fmt: skip


def test_declarations() -> None:
    assert (overlay_plugin.name, overlay_plugin.slot) == ("overlay", "snapshots")
    assert (images_plugin.name, images_plugin.slot, images_plugin.requires) == ("images", "images", ("snapshots",))
    assert (volumes_plugin.name, volumes_plugin.slot) == ("local-volumes", "volumes")
    for config in (OverlayConfig, ImagesConfig, LocalVolumesConfig):
        assert config.__dataclass_params__.frozen
        assert all(f.metadata["doc"] for f in dataclasses.fields(config))
    assert OverlayConfig().driver == "auto" and ImagesConfig().compression_level == 6


def test_probe_needs_root(monkeypatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert "root" in (probe(OverlayConfig()) or "")


@pytest.mark.root
async def test_setup_gives_slot_providers(mount_guard: Path, tmp_path: Path) -> None:
    snapshots = await overlay_plugin.setup(context(overlay_plugin, OverlayConfig(), mount_guard))
    assert isinstance(snapshots, Snapshotter) and snapshots.driver == "overlay"
    assert snapshots.root == mount_guard / "plugins" / "overlay"
    images = await images_plugin.setup(context(images_plugin, ImagesConfig(), mount_guard, {"snapshots": snapshots}))
    assert isinstance(images, ImageStore) and images.root == mount_guard / "plugins" / "images"
    with pytest.raises(InvalidArgument, match="compression_level"):
        await images_plugin.setup(context(images_plugin, ImagesConfig(compression_level=0), mount_guard, {"snapshots": snapshots}))
    volumes = await volumes_plugin.setup(context(volumes_plugin, LocalVolumesConfig(), mount_guard))
    assert isinstance(volumes, VolumeStore) and volumes.root == mount_guard / "plugins" / "local-volumes"
    custom = await volumes_plugin.setup(context(volumes_plugin, LocalVolumesConfig(root=str(tmp_path / "v")), mount_guard))
    assert custom.root == tmp_path / "v"
