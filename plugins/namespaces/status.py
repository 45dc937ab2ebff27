"""A process's recorded exit status: ``exit.json`` in its state directory.

The monitor writes it when it reaps the process; it outlives the daemon (and the monitor),
which is how a restarted daemon learns the true exit code of a container that ended while
it was away.
"""

from __future__ import annotations

import json
import os

STATUS_FILE = "exit.json"


def write_status(state_dir: str, code: int) -> None:
    """Record the exit status atomically; a state directory already removed is ignored."""
    tmp = os.path.join(state_dir, STATUS_FILE + ".tmp")
    try:
        with open(tmp, "w") as f:
            json.dump({"exit_code": code}, f)
        os.replace(tmp, os.path.join(state_dir, STATUS_FILE))
    except FileNotFoundError:
        pass  # the daemon gave the process up and deleted its state


def read_status(state_dir: str) -> int | None:
    """The recorded exit status, or None if none was recorded (yet)."""
    try:
        with open(os.path.join(state_dir, STATUS_FILE)) as f:
            return int(json.load(f)["exit_code"])
    except (FileNotFoundError, ValueError, KeyError):
        return None
