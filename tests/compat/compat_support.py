"""Names shared by the compat tests and their fixtures."""

from __future__ import annotations

import os

from shoaltest import Daemon

IMAGE = "busybox:compat"


def docker_env(daemon: Daemon) -> dict[str, str]:
    """Environment for the docker CLI: talk to this shoald, keep its config in the run dir."""
    return {**os.environ, "DOCKER_HOST": f"unix://{daemon.socket}", "DOCKER_CONFIG": str(daemon.ready_file.parent)}  # type: ignore[attr-defined]
