"""shoal: a container engine and Swarm-class orchestrator built as a plugin-based microkernel.

The public names below load on first use, so ``import shoal`` (and the CLI's start) stays
cheap: ``from shoal import Plugin, hookimpl, setting, open_engine``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "hookimpl": "shoal._markers",
    "Plugin": "shoal.plugin",
    "PluginContext": "shoal.plugin",
    "NoConfig": "shoal.plugin",
    "setting": "shoal.plugin",
    "Skip": "shoal.errors",
    "ShoalError": "shoal.errors",
    "open_engine": "shoal.kernel",
    "Engine": "shoal.kernel",
    "Event": "shoal.events",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shoal' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
