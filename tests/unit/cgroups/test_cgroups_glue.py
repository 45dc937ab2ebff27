"""The plugin's declaration: slot, config and probe."""

from __future__ import annotations

import dataclasses

from shoal.plugins.cgroups import CgroupsConfig, plugin, probe


def test_declaration() -> None:
    assert plugin.name == "cgroups" and plugin.slot == "resources"
    assert plugin.config is CgroupsConfig and plugin.probe is probe
    config = CgroupsConfig()
    assert (config.driver, config.parent) == ("auto", "shoal")
    assert all(f.metadata["doc"] for f in dataclasses.fields(CgroupsConfig))


def test_probe_explains_a_missing_hierarchy(monkeypatch) -> None:
    from shoal.plugins.cgroups import layout

    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr(layout, "read_layout", lambda: layout.CgroupLayout(v1={"memory": "/m"}))
    assert probe(CgroupsConfig()) is None
    assert "cgroup2" in (probe(CgroupsConfig(driver="v2")) or "")
    monkeypatch.setattr(layout, "read_layout", lambda: layout.CgroupLayout())
    assert "no cgroup" in (probe(CgroupsConfig()) or "")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert "root" in (probe(CgroupsConfig()) or "")
