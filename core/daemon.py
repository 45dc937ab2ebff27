"""``shoald``: load a plugin set, run the kernel until SIGTERM or SIGINT, exit cleanly.

Exit status: 0 after a clean shutdown, 2 for an invalid config, 1 when a plugin fails to
start or a service fails (the error names the plugin).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from . import __version__

log = logging.getLogger("shoald")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shoald", description="The shoal daemon: runs the kernel on a plugin set.")
    parser.add_argument("--version", action="version", version=f"shoald {__version__}")
    parser.add_argument("--config", "-c", default="default", help="plugin set: a TOML file or a preset name (default: %(default)s)")
    parser.add_argument("--data-root", help="override [engine].data_root")
    parser.add_argument("--run-root", help="override [engine].run_root")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="override [engine].log_level")
    parser.add_argument("--ready-file", type=Path, help="write this file (JSON: pid, boot time, plugins) once ready; removed on exit")
    return parser


def _notify_systemd(message: str) -> None:
    """Tell a supervising systemd (Type=notify) about our state, when it asked to be told."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


def _write_ready_file(path: Path, payload: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)


async def _serve(config: object, ready_file: Path | None) -> None:
    import trio

    from .kernel import open_engine

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with open_engine(config) as engine:  # type: ignore[arg-type]
            boot_ms = (engine.boot_seconds or 0) * 1000
            active = [s.name for s in engine.statuses.values() if s.state == "ok"]
            skipped = {s.name: s.reason for s in engine.statuses.values() if s.state == "skipped"}
            for name, reason in skipped.items():
                log.warning("plugin %s skipped: %s", name, reason)
            log.info("shoald %s ready in %.1f ms; plugins: %s", __version__, boot_ms, ", ".join(active))
            if ready_file is not None:
                _write_ready_file(ready_file, {"pid": os.getpid(), "boot_ms": boot_ms, "plugins": active, "skipped": skipped})
            _notify_systemd("READY=1")
            try:
                async for signum in signals:
                    log.info("received %s: shutting down", signal.Signals(signum).name)
                    _notify_systemd("STOPPING=1")
                    break
            finally:
                if ready_file is not None:
                    ready_file.unlink(missing_ok=True)
    log.info("shoald stopped")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .config import ConfigError, load_config
    from .errors import PluginError
    from .presets import resolve_config_path

    try:
        config = load_config(resolve_config_path(args.config))
    except ConfigError as exc:
        print(f"shoald: {exc}", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in (("data_root", args.data_root), ("run_root", args.run_root), ("log_level", args.log_level)) if v}
    config = dataclasses.replace(config, engine=dataclasses.replace(config.engine, **overrides))
    logging.basicConfig(
        level=config.engine.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    import trio

    try:
        trio.run(_serve, config, args.ready_file)
    except PluginError as exc:
        print(f"shoald: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
