"""``top``: ps(1) on the host, rows kept for the container's processes."""

from __future__ import annotations

import shlex

from typing import Any

import trio

from shoal.errors import InvalidArgument


async def top(pids: list[int], ps_args: str) -> dict[str, Any]:
    args = shlex.split(ps_args or "-ef")
    result = await trio.run_process(["ps", *args], capture_stdout=True, capture_stderr=True, check=False)
    if result.returncode != 0:
        raise InvalidArgument(f"ps: {result.stderr.decode().strip() or 'failed'}")
    lines = result.stdout.decode().splitlines()
    if not lines:
        raise InvalidArgument("ps printed nothing")
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidArgument("Couldn't find PID field in ps output")
    column = titles.index("PID")
    wanted = set(pids)
    processes = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in wanted:
            processes.append(fields)
    return {"Titles": titles, "Processes": processes}



