"""Plugin-set decoding: every error kind, reported all at once with file, line and path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from shoal import Plugin, setting
from shoal.catalog import Catalog, CatalogEntry
from shoal.config import ConfigError, load_config, parse_config
from shoal.plugin import NoConfig


@dataclass(frozen=True)
class Limits:
    cpus: float = setting(1.0, "CPUs.")


@dataclass(frozen=True)
class CgroupsConfig:
    driver: Literal["auto", "v1", "v2"] = setting("auto", "Which cgroup driver.")
    parent: str = setting("shoal", "Parent group.")
    retries: int = setting(3, "Retries.")
    paths: list[str] = setting(doc="Paths.", factory=list)
    limits: Limits = setting(doc="Nested.", factory=Limits)


@dataclass(frozen=True)
class NeedsValue:
    token: str = setting(doc="Required, no default.")


async def _nothing(ctx):
    return object()


def plugin(name: str, slot: str | None = None, requires: tuple[str, ...] = (), config: type = NoConfig) -> Plugin:
    return Plugin(name=name, summary=f"{name} for tests.", setup=_nothing, slot=slot, requires=requires, config=config)


def catalog(*plugins: Plugin) -> Catalog:
    cat = Catalog()
    for p in plugins:
        cat.add(CatalogEntry(p.name, "tests", lambda p=p: p))
    return cat


CAT = catalog(
    plugin("cgroups", "resources", config=CgroupsConfig),
    plugin("namespaces", "isolation", requires=("resources",)),
    plugin("sqlite", "store"),
    plugin("raft", "store"),
    plugin("needs-value", config=NeedsValue),
)


def problems(text: str, cat: Catalog = CAT) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, cat, name="set.toml")
    return [str(p) for p in info.value.problems]


def test_valid_config_decodes_into_dataclasses() -> None:
    config = parse_config(
        """
        [load]
        enable = ["namespaces", "cgroups", "sqlite"]
        [plugins.cgroups]
        driver = "v1"
        paths = ["/a", "/b"]
        limits = { cpus = 2 }
        """,
        CAT,
    )
    assert [e.plugin.name for e in config.plugins] == ["cgroups", "namespaces", "sqlite"]
    cg = config.plugins[0].config
    assert cg == CgroupsConfig(driver="v1", paths=["/a", "/b"], limits=Limits(cpus=2.0))
    assert config.slots == {"resources": "cgroups", "isolation": "namespaces", "store": "sqlite"}


def test_unknown_key_names_file_line_path_and_suggests() -> None:
    text = '[load]\nenable = ["cgroups"]\n[plugins.cgroups]\ndrivr = "v1"\n'
    (problem,) = problems(text)
    assert problem.startswith("set.toml:4: [plugins.cgroups].drivr: unknown key \"drivr\" (did you mean \"driver\"?)")


def test_wrong_type_and_bad_literal() -> None:
    text = '[load]\nenable = ["cgroups"]\n[plugins.cgroups]\ndriver = "v3"\nretries = "many"\n'
    got = problems(text)
    assert got == [
        'set.toml:4: [plugins.cgroups].driver: expected one of "auto", "v1", "v2", got "v3"',
        'set.toml:5: [plugins.cgroups].retries: expected an integer, got "many"',
    ]


def test_bool_is_not_an_integer_and_list_items_are_checked() -> None:
    text = '[load]\nenable = ["cgroups"]\n[plugins.cgroups]\nretries = true\npaths = ["/a", 3]\n'
    got = problems(text)
    assert "[plugins.cgroups].retries: expected an integer, got true" in got[0]
    assert "[plugins.cgroups].paths[1]: expected a string, got 3" in got[1]


def test_nested_table_errors_have_nested_paths() -> None:
    text = '[load]\nenable = ["cgroups"]\n[plugins.cgroups.limits]\ncpus = "two"\n'
    (problem,) = problems(text)
    assert "[plugins.cgroups.limits].cpus: expected a number, got \"two\"" in problem
    assert problem.startswith("set.toml:4:")


def test_unknown_plugin_suggests_closest() -> None:
    (problem,) = problems('[load]\nenable = ["cgroup"]\n')
    assert problem.startswith('set.toml:2: [load].enable: unknown plugin "cgroup" (did you mean "cgroups"?)')


def test_table_for_plugin_not_enabled() -> None:
    (problem,) = problems('[load]\nenable = ["sqlite"]\n[plugins.cgroups]\ndriver = "v1"\n')
    assert problem == 'set.toml:3: [plugins.cgroups]: table for plugin "cgroups", which is not enabled'


def test_table_for_unknown_plugin() -> None:
    (problem,) = problems('[load]\nenable = ["sqlite"]\n[plugins.sqlit]\nx = 1\n')
    assert '[plugins.sqlit]: unknown plugin "sqlit" (did you mean "sqlite"?)' in problem


def test_slot_with_no_provider() -> None:
    (problem,) = problems('[load]\nenable = ["namespaces"]\n')
    assert 'plugin "namespaces" requires slot "resources", which no enabled plugin fills' in problem


def test_two_providers_need_a_choice_and_choice_resolves() -> None:
    (problem,) = problems('[load]\nenable = ["sqlite", "raft"]\n')
    assert 'several enabled plugins fill slot "store" (sqlite, raft): choose one in [slots]' in problem
    config = parse_config('[load]\nenable = ["sqlite", "raft"]\n[slots]\nstore = "raft"\n', CAT)
    assert config.slots["store"] == "raft"
    assert [e.plugin.name for e in config.plugins] == ["raft"]
    assert config.idle == {"sqlite": 'slot "store" is filled by "raft"'}


def test_slot_choice_errors() -> None:
    got = problems('[load]\nenable = ["sqlite"]\n[slots]\nstore = "cgroups"\nstorage = "sqlite"\n')
    assert any('[slots].store: plugin "cgroups" is not enabled' in p for p in got)
    assert any('[slots].storage: unknown slot "storage" (did you mean "store"?)' in p for p in got)


def test_missing_required_plugin_and_required_setting() -> None:
    got = problems('[load]\nenable = ["sqlite", "needs-value"]\nrequired = ["cgroups"]\n')
    assert any('[load].required: required plugin "cgroups" will not start: it is not enabled' in p for p in got)
    assert any('[plugins.needs-value]: missing required key "token" (a string)' in p for p in got)


def test_all_problems_reported_at_once_from_several_sections() -> None:
    text = (
        "version = 2\n"
        "colour = 1\n"
        "[engine]\nlog_level = \"loud\"\n"
        '[load]\nenable = ["cgroups", "nope"]\nenabled = []\n'
        '[plugins.cgroups]\ndriver = 1\n'
    )
    got = problems(text)
    assert len(got) == 6, got
    joined = "\n".join(got)
    for fragment in ("version: expected 1, got 2", 'unknown key "colour"', "[engine].log_level: expected one of",
                     'unknown plugin "nope"', '[load].enabled: unknown key "enabled" (did you mean "enable"?)',
                     "[plugins.cgroups].driver: expected one of"):  # fmt: skip
        assert fragment in joined


def test_invalid_toml_names_the_line() -> None:
    (problem,) = problems('[load]\nenable = ["a"\n')
    assert problem.startswith("set.toml:") and "not valid TOML" in problem


def test_extend_merges_and_errors_name_the_file_they_come_from(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text('[load]\nenable = ["cgroups", "sqlite"]\n[plugins.cgroups]\nparent = "base"\nretries = 5\n')
    (tmp_path / "site.toml").write_text('extend = "base.toml"\n[load]\nenable = ["namespaces"]\n[plugins.cgroups]\nretries = 7\n')
    config = load_config(tmp_path / "site.toml", CAT)
    cg = next(e.config for e in config.plugins if e.plugin.name == "cgroups")
    assert (cg.parent, cg.retries) == ("base", 7)
    assert {e.plugin.name for e in config.plugins} == {"cgroups", "sqlite", "namespaces"}

    (tmp_path / "base.toml").write_text('[load]\nenable = ["cgroups"]\n[plugins.cgroups]\n\nparent = 5\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "site.toml", CAT)
    (problem,) = info.value.problems
    assert problem.file == str(tmp_path / "base.toml") and problem.line == 5
    assert problem.path == "[plugins.cgroups].parent"


def test_disable_removes_what_an_extended_file_enables(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text('[load]\nenable = ["cgroups", "sqlite"]\n')
    (tmp_path / "min.toml").write_text('extend = "base.toml"\n[load]\ndisable = ["cgroups"]\n')
    config = load_config(tmp_path / "min.toml", CAT)
    assert [e.plugin.name for e in config.plugins] == ["sqlite"]
    assert config.disabled == ("cgroups",)


def test_extend_cycle_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('extend = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extend = "a.toml"\n')
    with pytest.raises(ConfigError, match="extend cycle"):
        load_config(tmp_path / "a.toml", CAT)
    (tmp_path / "c.toml").write_text('extend = "missing.toml"\n')
    with pytest.raises(ConfigError, match=r"missing.toml: cannot read config \(extended by"):
        load_config(tmp_path / "c.toml", CAT)


def test_dependency_cycle_is_an_error() -> None:
    cat = catalog(plugin("a", "network", requires=("volumes",)), plugin("b", "volumes", requires=("network",)))
    (problem,) = problems('[load]\nenable = ["a", "b"]\n', cat)
    assert "dependency cycle: a -> b -> a" in problem


def test_start_order_follows_requires_graph() -> None:
    cat = catalog(
        plugin("api", requires=("isolation", "store")),
        plugin("ns", "isolation", requires=("resources",)),
        plugin("cg", "resources"),
        plugin("db", "store"),
    )
    config = parse_config('[load]\nenable = ["api", "ns", "cg", "db"]\n', cat)
    order = [e.plugin.name for e in config.plugins]
    assert order.index("cg") < order.index("ns") < order.index("api")
    assert order.index("db") < order.index("api")


def test_module_path_plugin_is_loaded_and_enabled(tmp_path: Path) -> None:
    (tmp_path / "devplugin.py").write_text(
        "from dataclasses import dataclass\n"
        "from shoal import Plugin, setting\n"
        "@dataclass(frozen=True)\n"
        "class C:\n    greeting: str = setting('hi', 'What to say.')\n"
        "async def setup(ctx):\n    return None\n"
        "plugin = Plugin(name='dev', summary='Dev plugin.', setup=setup, config=C)\n"
    )
    (tmp_path / "set.toml").write_text('[load]\nmodules = ["./devplugin.py"]\n[plugins.dev]\ngreeting = "hello"\n')
    config = load_config(tmp_path / "set.toml", catalog())
    (entry,) = config.plugins
    assert entry.plugin.name == "dev" and entry.config.greeting == "hello"
    assert entry.source == f"module {tmp_path / 'devplugin.py'}"


def test_bad_module_path_is_reported(tmp_path: Path) -> None:
    (tmp_path / "set.toml").write_text('[load]\nmodules = ["./nothere.py", "no_such_module_xyz"]\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "set.toml", catalog())
    messages = [p.message for p in info.value.problems]
    assert any("nothere.py' does not exist" in m for m in messages)
    assert any("no_such_module_xyz" in m and "failed to import" in m for m in messages)
