"""``shoal``: the command-line client.

Each command lives in its own module, imported only when that command runs, so
``shoal --version`` and ``shoal --help`` start as fast as the interpreter allows.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .. import __version__

#: command -> ("module" or "module:function" in this package, one-line help); the function
#: defaults to ``run`` and is called with the command's arguments.
COMMANDS = {
    "run": ("run_cmd:run", "create and run a new container from an image"),
    "create": ("run_cmd:create", "create a new container"),
    "start": ("run_cmd:start", "start one or more stopped containers"),
    "ps": ("container_cmds:ps", "list containers"),
    "logs": ("logs_cmd:logs", "fetch the logs of a container"),
    "exec": ("exec_cmd:exec_", "execute a command in a running container"),
    "stop": ("container_cmds:stop", "stop one or more running containers"),
    "kill": ("container_cmds:kill", "kill one or more running containers"),
    "restart": ("container_cmds:restart", "restart one or more containers"),
    "rm": ("container_cmds:rm", "remove one or more containers"),
    "wait": ("container_cmds:wait", "block until containers stop, then print their exit codes"),
    "pause": ("container_cmds:pause", "pause all processes within one or more containers"),
    "unpause": ("container_cmds:unpause", "unpause all processes within one or more containers"),
    "rename": ("container_cmds:rename", "rename a container"),
    "top": ("container_cmds:top", "display the running processes of a container"),
    "inspect": ("container_cmds:inspect", "low-level information on containers or images"),
    "stats": ("stats_cmd:stats", "live resource usage statistics of containers"),
    "import": ("image_cmds:import_", "import a tarball or a directory as a filesystem image"),
    "images": ("image_cmds:images", "list images"),
    "rmi": ("image_cmds:rmi", "remove one or more images"),
    "tag": ("image_cmds:tag", "create a tag that refers to an image"),
    "pull": ("image_cmds:pull", "download an image from a registry"),
    "push": ("image_cmds:push", "upload an image to a registry"),
    "save": ("image_cmds:save", "save images to a tar archive (docker save format)"),
    "load": ("image_cmds:load", "load images from a tar archive or STDIN"),
    "login": ("image_cmds:login", "log in to a registry"),
    "logout": ("image_cmds:logout", "log out from a registry"),
    "image": ("image_cmds:image", "manage images (inspect, history, prune, ls, rm, tag, pull, push, save, load)"),
    "events": ("system_cmds:events", "real time events from the daemon"),
    "version": ("system_cmds:version", "client and daemon versions"),
    "info": ("system_cmds:info", "system-wide information"),
    "config": ("config_cmd", "print or check plugin-set configs"),
    "plugins": ("plugins_cmd", "list plugins with their slot, status and source"),
    "raft": ("raft_cmd", "Raft status of a swarm manager (members, leader, term, quorum)"),
    "network": ("network_cmds:network", "manage networks (create, ls, inspect, rm, connect, disconnect, prune)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shoal", description="shoal: containers and swarms, built from plugins.")
    parser.add_argument("--version", action="version", version=f"shoal {__version__}")
    parser.add_argument("-H", "--host", metavar="unix:///PATH",
                        help="daemon socket (default: $SHOAL_HOST or unix:///run/shoal/shoal.sock)")  # fmt: skip
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        commands.add_parser(name, help=help_text, add_help=False)
    return parser


def _take_host(argv: list[str]) -> tuple[str | None, list[str]]:
    """Split a leading ``-H/--host ADDRESS`` (or ``--host=ADDRESS``) off the arguments."""
    host = None
    while argv:
        if argv[0] in ("-H", "--host") and len(argv) > 1:
            host, argv = argv[1], argv[2:]
        elif argv[0].startswith("--host="):
            host, argv = argv[0].partition("=")[2], argv[1:]
        else:
            break
    return host, argv


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    host, argv = _take_host(argv)
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints help, --version, or the error for an unknown command
        parser.print_help()
        return 2
    if host:
        # The commands' clients read the address from the environment, as a child shell would.
        os.environ["SHOAL_HOST"] = host
    module_name, _, function = COMMANDS[argv[0]][0].partition(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return int(getattr(module, function or "run")(argv[1:]) or 0)
