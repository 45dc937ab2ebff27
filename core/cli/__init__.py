"""``shoal``: the command-line client.

Each command lives in its own module, imported only when that command runs, so
``shoal --version`` and ``shoal --help`` start as fast as the interpreter allows.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__

#: command -> (module in this package, one-line help)
COMMANDS = {
    "config": ("config_cmd", "print or check plugin-set configs"),
    "plugins": ("plugins_cmd", "list plugins with their slot, status and source"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shoal", description="shoal: containers and swarms, built from plugins.")
    parser.add_argument("--version", action="version", version=f"shoal {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        commands.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints help, --version, or the error for an unknown command
        parser.print_help()
        return 2
    module = importlib.import_module(f"{__name__}.{COMMANDS[argv[0]][0]}")
    return int(module.run(argv[1:]) or 0)
