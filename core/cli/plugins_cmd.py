"""``shoal plugins``: every known plugin with its slot, status on this host, and source."""

from __future__ import annotations

import argparse
import sys

from .table import print_table


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="shoal plugins", description="List plugins with slot, status and source.")
    parser.add_argument("--config", "-c", default="default", help="plugin set to evaluate (default: %(default)s)")
    args = parser.parse_args(argv)

    from ..catalog import Catalog
    from ..config import ConfigError, load_config
    from ..presets import resolve_config_path
    from ..status import plugin_statuses

    catalog = Catalog.discover()
    try:
        config = load_config(resolve_config_path(args.config), catalog)
    except ConfigError as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 2
    rows = [(s.name, s.slot or "-", s.describe(), s.source) for s in plugin_statuses(config, catalog)]
    print_table(("NAME", "SLOT", "STATUS", "SOURCE"), rows)
    return 0
