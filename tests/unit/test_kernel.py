"""The kernel: dependency order, skip vs fatal start-up, services, hooks, clean shutdown."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from shoal import Plugin, Skip, hookimpl, open_engine
from shoal.catalog import Catalog, CatalogEntry
from shoal.config import parse_config
from shoal.errors import PluginError


@dataclass
class Journal:
    lines: list[str] = field(default_factory=list)


def make_plugin(journal: Journal, name: str, slot: str | None = None, requires=(), uses=(), skip: str | None = None,
                fail: bool = False, service: bool = False, service_fails: bool = False, hooks: object | None = None,
                probe=None) -> Plugin:  # fmt: skip
    @asynccontextmanager
    async def setup(ctx):
        deps = {s: ctx.slot(s) for s in (*requires, *uses)}
        journal.lines.append(f"setup {name} deps={sorted(k for k, v in deps.items() if v is not None)}")
        if skip:
            raise Skip(skip)
        if fail:
            raise RuntimeError("disk on fire")
        if hooks is not None:
            ctx.add_hooks(hooks)
        if service:
            async def run(task_status=trio.TASK_STATUS_IGNORED):
                journal.lines.append(f"service {name} started")
                task_status.started()
                try:
                    if service_fails:
                        await trio.sleep(0.01)
                        raise ValueError(f"service {name} broke")
                    await trio.sleep_forever()
                finally:
                    journal.lines.append(f"service {name} cancelled")
            ctx.add_service(f"{name}-loop", run)
        try:
            yield f"provider:{name}" if slot else None
        finally:
            journal.lines.append(f"close {name}")

    return Plugin(name=name, summary="test", setup=setup, slot=slot, requires=tuple(requires), uses=tuple(uses), probe=probe)


def engine_config(tmp_path: Path, plugins: list[Plugin], enable: list[str] | None = None, required: list[str] = ()):
    cat = Catalog()
    for p in plugins:
        cat.add(CatalogEntry(p.name, "tests", lambda p=p: p))
    names = enable if enable is not None else [p.name for p in plugins]
    text = f'[engine]\ndata_root = "{tmp_path}"\nrun_root = "{tmp_path}/run"\n[load]\nenable = {names!r}\nrequired = {list(required)!r}\n'
    return parse_config(text.replace("'", '"'), cat)


async def test_setup_in_dependency_order_and_close_in_reverse(tmp_path: Path) -> None:
    j = Journal()
    plugins = [
        make_plugin(j, "api", requires=["isolation", "store"]),
        make_plugin(j, "ns", "isolation", requires=["resources"]),
        make_plugin(j, "cg", "resources"),
        make_plugin(j, "db", "store"),
    ]
    async with open_engine(engine_config(tmp_path, plugins)) as engine:
        assert engine.slot("isolation") == "provider:ns"
        assert {s.state for s in engine.statuses.values()} == {"ok"}
    setups = [line for line in j.lines if line.startswith("setup")]
    assert setups == ["setup cg deps=[]", "setup ns deps=['resources']", "setup db deps=[]",
                      "setup api deps=['isolation', 'store']"]  # fmt: skip
    closes = [line.split()[1] for line in j.lines if line.startswith("close")]
    assert closes == ["api", "db", "ns", "cg"]


async def test_skip_cascades_to_dependents_but_not_to_users(tmp_path: Path) -> None:
    j = Journal()
    plugins = [
        make_plugin(j, "cg", "resources", skip="not root"),
        make_plugin(j, "ns", "isolation", requires=["resources"]),
        make_plugin(j, "stats", uses=["resources"]),
    ]
    async with open_engine(engine_config(tmp_path, plugins)) as engine:
        st = engine.statuses
        assert (st["cg"].state, st["cg"].reason) == ("skipped", "not root")
        assert st["ns"].state == "skipped"
        assert st["ns"].reason == "requires slot 'resources', whose provider 'cg' was skipped (not root)"
        assert st["stats"].state == "ok"
        assert not engine.has_slot("resources")
        with pytest.raises(LookupError, match="no plugin fills slot 'resources'"):
            engine.slot("resources")
    assert "setup ns deps=['resources']" not in j.lines  # never set up
    assert "setup stats deps=[]" in j.lines


async def test_probe_skips_before_setup(tmp_path: Path) -> None:
    j = Journal()
    plugins = [make_plugin(j, "cg", "resources", probe=lambda config: "no cgroup v2 here")]
    async with open_engine(engine_config(tmp_path, plugins)) as engine:
        assert engine.statuses["cg"].reason == "no cgroup v2 here"
    assert j.lines == []


async def test_required_plugin_that_skips_is_fatal_and_closes_the_rest(tmp_path: Path) -> None:
    j = Journal()
    plugins = [make_plugin(j, "db", "store", service=True), make_plugin(j, "cg", "resources", skip="not root")]
    with pytest.raises(PluginError, match="plugin 'cg': is required but was skipped: not root"):
        async with open_engine(engine_config(tmp_path, plugins, required=["cg"])):
            pytest.fail("must not get ready")
    assert "close db" in j.lines
    assert "service db started" not in j.lines  # services start only once every plugin is set up


async def test_failing_setup_names_the_plugin_and_unwinds(tmp_path: Path) -> None:
    j = Journal()
    plugins = [make_plugin(j, "db", "store"), make_plugin(j, "bad", requires=["store"], fail=True)]
    with pytest.raises(PluginError) as info:
        async with open_engine(engine_config(tmp_path, plugins)):
            pytest.fail("must not get ready")
    assert str(info.value) == "plugin 'bad': setup failed: RuntimeError: disk on fire"
    assert j.lines[-1] == "close db"


async def test_services_start_before_ready_and_are_cancelled_on_exit(tmp_path: Path) -> None:
    j = Journal()

    class Observer:
        @hookimpl
        def shoal_engine_ready(self, engine):
            j.lines.append("hook ready")

        @hookimpl
        def shoal_engine_stopping(self, engine):
            j.lines.append("hook stopping")

    plugins = [make_plugin(j, "db", "store", service=True, hooks=Observer())]
    async with open_engine(engine_config(tmp_path, plugins)):
        assert j.lines[-2:] == ["service db started", "hook ready"]
    assert j.lines[-3:] == ["hook stopping", "service db cancelled", "close db"]


async def test_failing_service_stops_the_engine(tmp_path: Path) -> None:
    j = Journal()
    plugins = [make_plugin(j, "db", "store", service=True, service_fails=True)]
    with pytest.raises(ValueError, match="service db broke"):
        async with open_engine(engine_config(tmp_path, plugins)):
            await trio.sleep_forever()
    assert j.lines[-1] == "close db"


async def test_misspelled_hook_fails_start_up_naming_the_plugin(tmp_path: Path) -> None:
    j = Journal()

    class Typo:
        @hookimpl
        def shoal_engine_redy(self, engine):
            pass

    plugins = [make_plugin(j, "db", "store"), make_plugin(j, "typo", hooks=Typo())]
    with pytest.raises(PluginError, match=r"plugin 'typo': implements an unknown hook: .*shoal_engine_redy"):
        async with open_engine(engine_config(tmp_path, plugins)):
            pytest.fail("must not get ready")
    assert "close db" in j.lines


async def test_hook_with_wrong_arguments_is_refused(tmp_path: Path) -> None:
    class WrongArgs:
        @hookimpl
        def shoal_event(self, event, extra):
            pass

    plugins = [make_plugin(Journal(), "bad", hooks=WrongArgs())]
    with pytest.raises(PluginError, match="plugin 'bad': bad hook implementation"):
        async with open_engine(engine_config(tmp_path, plugins)):
            pytest.fail("must not get ready")


async def test_events_reach_subscribers_and_the_event_hook(tmp_path: Path) -> None:
    seen: list[str] = []

    class Watcher:
        @hookimpl
        def shoal_event(self, event):
            seen.append(f"{event.type}:{event.action}:{event.actor_id}")

    plugins = [make_plugin(Journal(), "w", hooks=Watcher())]
    async with open_engine(engine_config(tmp_path, plugins)) as engine:
        received = []

        async def consume(task_status=trio.TASK_STATUS_IGNORED):
            async with engine.events.subscribe(lambda e: e.type == "container") as stream:
                task_status.started()
                async for event in stream:
                    received.append(event)
                    if len(received) == 2:
                        return

        async with trio.open_nursery() as nursery:
            await nursery.start(consume)
            await trio.sleep(0)
            engine.events.emit("container", "create", "c1", name="web")
            engine.events.emit("image", "pull", "busybox")
            engine.events.emit("container", "start", "c1", name="web")
        assert [(e.action, e.attributes["name"]) for e in received] == [("create", "web"), ("start", "web")]
        assert received[0].to_docker()["Actor"] == {"ID": "c1", "Attributes": {"name": "web"}}
    assert seen == ["container:create:c1", "image:pull:busybox", "container:start:c1"]
