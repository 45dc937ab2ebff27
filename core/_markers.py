"""The pluggy marker plugins use: ``from shoal import hookimpl``."""

import pluggy

from .hookspecs import PROJECT

hookimpl = pluggy.HookimplMarker(PROJECT)
