"""Local named volumes: create, get, list, remove, names validated like Docker's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shoal.errors import InvalidArgument, NotFound
from shoal.plugins.volumes.volumes import LocalVolumes


@pytest.fixture
def volumes(tmp_path: Path) -> LocalVolumes:
    return LocalVolumes.open(tmp_path / "volumes")


async def test_create_get_list_remove(volumes: LocalVolumes) -> None:
    created = await volumes.create("data", {"team": "a"})
    assert created.mountpoint == str(volumes.root / "data" / "_data")
    assert Path(created.mountpoint).is_dir()
    assert created.driver == "local" and created.labels == {"team": "a"} and created.created.endswith("Z")
    assert json.loads((volumes.root / "data" / "volume.json").read_text())["labels"] == {"team": "a"}
    Path(created.mountpoint, "file").write_text("kept")
    again = await volumes.create("data", {"other": "labels"})
    assert again == created and Path(created.mountpoint, "file").exists()
    assert await volumes.get("data") == created
    await volumes.create("b.v_1-x", {})
    assert [v.name for v in await volumes.list()] == ["b.v_1-x", "data"]
    await volumes.remove("data")
    assert not (volumes.root / "data").exists()
    with pytest.raises(NotFound, match="no such volume: data"):
        await volumes.get("data")
    with pytest.raises(NotFound):
        await volumes.remove("data")


async def test_unnamed_volumes_get_a_random_name(volumes: LocalVolumes) -> None:
    volume = await volumes.create("", {})
    assert re.fullmatch(r"[0-9a-f]{64}", volume.name)


@pytest.mark.parametrize("name", ["a", "-x", ".hidden", "a/b", "../up", "with space", "x" * 256, "é"])
async def test_invalid_names_are_refused(volumes: LocalVolumes, name: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid volume name"):
        await volumes.create(name, {})
    with pytest.raises(NotFound):
        await volumes.get(name)
    assert list(volumes.root.iterdir()) == []


async def test_driver_options_are_refused_not_ignored(volumes: LocalVolumes) -> None:
    with pytest.raises(InvalidArgument, match="takes no options"):
        await volumes.create("v1", {}, {"type": "tmpfs"})
    assert await volumes.list() == []


def test_reopen_drops_half_made_volumes(tmp_path: Path) -> None:
    root = tmp_path / "volumes"
    LocalVolumes.open(root)
    (root / ".tmp-abc" / "_data").mkdir(parents=True)
    (root / "stray-dir-without-metadata").mkdir()
    LocalVolumes.open(root)
    assert sorted(p.name for p in root.iterdir()) == ["stray-dir-without-metadata"]
