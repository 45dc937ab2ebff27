"""Meta-tests: the public contract is documented, and packaging matches the folders."""

from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from shoal import hookspecs
from shoal.catalog import Catalog
from shoal.slots import SLOTS

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("Args:", "Returns:", "Implementers:")


def _params(fn) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p not in ("self", "task_status")]


def _check_doc(what: str, fn) -> list[str]:
    doc = inspect.getdoc(fn) or ""
    problems = [f"{what}: no docstring"] if not doc else []
    for section in SECTIONS:
        if doc and section not in doc:
            problems.append(f"{what}: docstring lacks {section}")
    args = doc.split("Args:", 1)[-1].split("Returns:", 1)[0]
    for name in _params(fn):
        if not re.search(rf"^\s*{name}:", args, re.M):
            problems.append(f"{what}: Args: does not describe {name!r}")
    return problems


def test_every_hook_spec_is_documented() -> None:
    specs = [(n, f) for n, f in vars(hookspecs).items() if n.startswith("shoal_") and callable(f)]
    assert len(specs) >= 5
    problems = [p for name, fn in specs for p in _check_doc(f"hook {name}", fn)]
    assert problems == []


def test_every_slot_protocol_and_method_is_documented() -> None:
    problems = []
    for slot, proto in SLOTS.items():
        if "Implementers:" not in (inspect.getdoc(proto) or ""):
            problems.append(f"slot {slot} ({proto.__name__}): class docstring lacks Implementers:")
        methods = [n for n, f in vars(proto).items() if callable(f) and not n.startswith("_")]
        assert methods, slot
        problems += [p for n in methods for p in _check_doc(f"slot {slot}: {proto.__name__}.{n}", getattr(proto, n))]
    assert problems == []


def test_doc_check_catches_a_missing_argument() -> None:
    def spec(engine, extra):
        """Summary.

        Args:
            engine: documented.
        Returns:
            Nothing.
        Implementers:
            Anyone.
        """

    assert _check_doc("x", spec) == ["x: Args: does not describe 'extra'"]


def test_every_builtin_plugin_config_field_has_a_doc() -> None:
    catalog = Catalog.discover()
    builtins = [e for e in catalog.entries.values() if e.source.startswith("shoal ")]
    assert {"sqlite", "local-membership"} <= {e.name for e in builtins}
    problems = []
    for entry in builtins:
        plugin = entry.load()
        assert plugin.summary, entry.name
        assert dataclasses.is_dataclass(plugin.config) and plugin.config.__dataclass_params__.frozen, entry.name
        for f in dataclasses.fields(plugin.config):
            if not f.metadata.get("doc"):
                problems.append(f"{entry.name}: [plugins.{entry.name}].{f.name} has no doc")
    assert problems == []


def test_pyproject_lists_every_package_folder() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    mapping = setuptools["package-dir"]
    folders = {}
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            folders[".".join((package, *rel.parts))] = init.parent
    assert set(setuptools["packages"]) == set(folders)


def test_builtin_entry_points_match_plugin_packages() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    eps = project["project"]["entry-points"]["shoal.plugins"]
    for name, target in eps.items():
        module = target.split(":")[0]
        assert module in project["tool"]["setuptools"]["packages"], name


@pytest.mark.parametrize("module", ["pyroute2", "cryptography", "h11", "httpx"])
def test_import_shoal_pulls_in_no_plugin_dependency(module: str) -> None:
    code = f"import shoal, sys; from shoal import Plugin, hookimpl, setting; print({module!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_version_and_help_import_nothing_heavy() -> None:
    code = (
        "import sys; from shoal.cli import main\n"
        "for argv in (['--version'], ['--help']):\n"
        "    try: main(argv)\n"
        "    except SystemExit: pass\n"
        "print(sorted(m for m in ('trio', 'pluggy', 'pyroute2', 'cryptography', 'tomllib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
