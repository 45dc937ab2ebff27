"""``shoal config default|check``: print a complete documented config, or validate one."""

from __future__ import annotations

import argparse
import sys


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="shoal config", description="Print or check plugin-set configs.")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    default = sub.add_parser("default", help="print a complete, commented config")
    default.add_argument("--preset", default="default", help="preset or file to expand (default: %(default)s)")
    check = sub.add_parser("check", help="validate a config file, reporting every problem")
    check.add_argument("file")
    args = parser.parse_args(argv)

    from ..catalog import Catalog
    from ..config import ConfigError, load_config
    from ..presets import resolve_config_path
    from ..render import render_config

    catalog = Catalog.discover()
    target = args.preset if args.action == "default" else args.file
    try:
        config = load_config(resolve_config_path(target), catalog)
    except ConfigError as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 2
    if args.action == "default":
        sys.stdout.write(render_config(config, catalog))
        return 0
    active = ", ".join(entry.plugin.name for entry in config.plugins)
    count = len(config.plugins)
    print(f"{args.file}: ok ({count} plugin{'' if count == 1 else 's'} to start: {active})")
    return 0
