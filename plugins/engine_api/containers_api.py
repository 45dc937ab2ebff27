"""Container and exec endpoints: HTTP in, ``Containers`` slot calls out."""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import trio

from shoal.containers import Attachment
from shoal.errors import Conflict, InvalidArgument, ShoalError

from .http import Hijack, HttpError, RawStream, Request, Response
from .params import normalize_filters, parse_time, rfc3339_nano
from .routes import RouteTable
from .streams import DEFAULT_DETACH_KEYS, content_type, encode_output, parse_detach_keys, pump

if TYPE_CHECKING:
    from .app import Api

WAIT_CONDITIONS = ("not-running", "next-exit", "removed")
#: ``preread`` of the first stats sample, as Docker sends it.
ZERO_TIME = "0001-01-01T00:00:00Z"


def register(routes: RouteTable, api: Api) -> None:
    """Add the container and exec endpoints."""
    c = ContainerEndpoints(api)
    for method, pattern, handler in (
        ("GET", "/containers/json", c.list),
        ("POST", "/containers/create", c.create),
        ("POST", "/containers/prune", c.prune),
        ("GET", "/containers/{id}/json", c.inspect),
        ("POST", "/containers/{id}/start", c.start),
        ("POST", "/containers/{id}/stop", c.stop),
        ("POST", "/containers/{id}/kill", c.kill),
        ("POST", "/containers/{id}/restart", c.restart),
        ("POST", "/containers/{id}/pause", c.pause),
        ("POST", "/containers/{id}/unpause", c.unpause),
        ("POST", "/containers/{id}/wait", c.wait),
        ("POST", "/containers/{id}/attach", c.attach),
        ("GET", "/containers/{id}/logs", c.logs),
        ("POST", "/containers/{id}/resize", c.resize),
        ("GET", "/containers/{id}/top", c.top),
        ("GET", "/containers/{id}/stats", c.stats),
        ("POST", "/containers/{id}/rename", c.rename),
        ("DELETE", "/containers/{id}", c.remove),
        ("POST", "/containers/{id}/exec", c.exec_create),
        ("POST", "/exec/{id}/start", c.exec_start),
        ("POST", "/exec/{id}/resize", c.exec_resize),
        ("GET", "/exec/{id}/json", c.exec_inspect),
    ):
        routes.add(method, pattern, handler)


def _required_int(request: Request, name: str) -> int:
    value = request.int_arg(name)
    if value is None:
        raise InvalidArgument(f"query parameter {name!r} is required")
    return value


def _zeroed(value: Any) -> Any:
    """The same structure with every number set to 0 (the first sample's ``precpu_stats``)."""
    if isinstance(value, dict):
        return {k: _zeroed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_zeroed(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return 0


def pair_stats(sample: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """A stats sample with ``precpu_stats``/``preread`` taken from the one before it."""
    out = dict(sample)
    out.setdefault("read", rfc3339_nano())
    if previous is None:
        out["preread"] = ZERO_TIME
        out["precpu_stats"] = _zeroed(sample.get("cpu_stats", {}))
    else:
        out["preread"] = previous.get("read", ZERO_TIME)
        out["precpu_stats"] = previous.get("cpu_stats", {})
    return out


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class ContainerEndpoints:
    """The handlers; each translates one request into one ``Containers`` call."""

    def __init__(self, api: Api) -> None:
        self.api = api

    @property
    def engine(self) -> Any:
        return self.api.containers

    # ---------------------------------------------------------------- collection

    async def list(self, request: Request) -> Response:
        limit = request.int_arg("limit", -1) or -1
        filters = normalize_filters(request.json_arg("filters"))
        found = await self.engine.list(all=request.flag("all") or limit > 0, filters=filters)
        return Response.json(found[:limit] if limit > 0 else found)

    async def create(self, request: Request) -> Response:
        body = await request.json(required=True)
        result = await self.engine.create(body, name=request.arg("name") or None)
        return Response.json(result, 201)

    async def prune(self, request: Request) -> Response:
        filters = normalize_filters(request.json_arg("filters"))
        return Response.json(await self.engine.prune(filters))

    # ---------------------------------------------------------------- life cycle

    async def inspect(self, request: Request) -> Response:
        return Response.json(await self.engine.inspect(request.params["id"]))

    async def start(self, request: Request) -> Response:
        id = request.params["id"]
        try:
            await self.engine.start(id)
        except Conflict:
            state = (await self.engine.inspect(id)).get("State", {})
            if state.get("Running") and not state.get("Paused"):
                return Response.empty(304)  # already started
            raise
        return Response.empty()

    async def stop(self, request: Request) -> Response:
        try:
            await self.engine.stop(request.params["id"], request.int_arg("t"), request.arg("signal") or None)
        except Conflict:
            return Response.empty(304)  # already stopped
        return Response.empty()

    async def kill(self, request: Request) -> Response:
        await self.engine.kill(request.params["id"], request.arg("signal") or "SIGKILL")
        return Response.empty()

    async def restart(self, request: Request) -> Response:
        await self.engine.restart(request.params["id"], request.int_arg("t"), request.arg("signal") or None)
        return Response.empty()

    async def pause(self, request: Request) -> Response:
        await self.engine.pause(request.params["id"])
        return Response.empty()

    async def unpause(self, request: Request) -> Response:
        await self.engine.unpause(request.params["id"])
        return Response.empty()

    async def rename(self, request: Request) -> Response:
        name = request.arg("name")
        if not name:
            raise InvalidArgument("query parameter 'name' is required")
        await self.engine.rename(request.params["id"], name)
        return Response.empty()

    async def remove(self, request: Request) -> Response:
        await self.engine.remove(request.params["id"], force=request.flag("force"), volumes=request.flag("v"))
        return Response.empty()

    async def wait(self, request: Request) -> Response:
        """Send the head at once and the result when the wait ends (clients wait before start)."""
        id = request.params["id"]
        condition = request.arg("condition") or "not-running"
        if condition not in WAIT_CONDITIONS:
            raise InvalidArgument(f"invalid condition {condition!r}; expected one of {', '.join(WAIT_CONDITIONS)}")
        await self.engine.inspect(id)  # a missing container is a 404, before the head goes out

        async def result() -> AsyncIterator[bytes]:
            # The server sends the head before it asks for this chunk: the wait begins as
            # the client learns of it, before it can send the start that follows.
            try:
                outcome = await self.engine.wait(id, condition)
            except ShoalError as exc:
                outcome = {"StatusCode": -1, "Error": {"Message": str(exc)}}
            yield json.dumps(outcome).encode() + b"\n"

        return Response(200, result(), "application/json")

    # ---------------------------------------------------------------- streams

    async def attach(self, request: Request) -> Response | Hijack:
        id = request.params["id"]
        stdin, stdout, stderr = request.flag("stdin"), request.flag("stdout"), request.flag("stderr")
        stream, logs = request.flag("stream"), request.flag("logs")
        if not (stdin or stdout or stderr):
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        keys = parse_detach_keys(request.arg("detachKeys") or DEFAULT_DETACH_KEYS)
        if not stream:
            tty = bool((await self.engine.inspect(id)).get("Config", {}).get("Tty"))
            lines = await _maybe_await(self.engine.logs(id, stdout=stdout, stderr=stderr)) if logs else None

            async def replay(raw: RawStream) -> None:
                if lines is not None:
                    async for channel, data in lines:
                        await raw.send_all(encode_output(channel, data, tty))
                await raw.send_eof()

            return Hijack(replay, content_type(tty), getattr(lines, "aclose", None))
        attachment = await self.engine.attach(id, stdin=stdin, stdout=stdout, stderr=stderr, logs=logs)
        return self._hijack(attachment, stdin=stdin, detach_keys=keys)

    def _hijack(self, attachment: Attachment, *, stdin: bool, detach_keys: bytes = b"") -> Hijack:
        async def run(raw: RawStream) -> None:
            await pump(raw, attachment, stdin=stdin, detach_keys=detach_keys)

        return Hijack(run, content_type(attachment.tty), attachment.aclose)

    async def logs(self, request: Request) -> Response:
        id = request.params["id"]
        stdout, stderr = request.flag("stdout"), request.flag("stderr")
        if not (stdout or stderr):
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        tail_arg = (request.arg("tail") or "all").strip()
        if tail_arg == "all":
            tail = None
        elif tail_arg.lstrip("-").isdigit():
            tail = max(int(tail_arg), 0) if int(tail_arg) >= 0 else None
        else:
            raise InvalidArgument(f"invalid value for query parameter 'tail': {tail_arg!r}")
        since, until = request.arg("since"), request.arg("until")
        tty = bool((await self.engine.inspect(id)).get("Config", {}).get("Tty"))
        lines = await _maybe_await(
            self.engine.logs(
                id,
                stdout=stdout,
                stderr=stderr,
                follow=request.flag("follow"),
                since=parse_time(since, "since") if since else 0,
                until=parse_time(until, "until") if until else 0,
                timestamps=request.flag("timestamps"),
                tail=tail,
            )
        )

        async def body() -> AsyncIterator[bytes]:
            try:
                async for channel, data in lines:
                    yield encode_output(channel, data, tty)
            finally:
                aclose = getattr(lines, "aclose", None)
                if aclose is not None:
                    await aclose()

        return Response(200, body(), content_type(tty))

    async def resize(self, request: Request) -> Response:
        await self.engine.resize(request.params["id"], _required_int(request, "h"), _required_int(request, "w"))
        return Response.empty(200)

    async def top(self, request: Request) -> Response:
        return Response.json(await self.engine.top(request.params["id"], request.arg("ps_args") or "-ef"))

    async def stats(self, request: Request) -> Response:
        id = request.params["id"]
        stream, one_shot = request.flag("stream", True), request.flag("one-shot")
        if stream and one_shot:
            raise InvalidArgument("cannot have stream=true and one-shot=true")
        first = await self.engine.stats(id)
        interval = self.api.stats_interval
        if one_shot:
            return Response.json(pair_stats(first, None))
        if not stream:
            await trio.sleep(interval)
            return Response.json(pair_stats(await self.engine.stats(id), first))

        async def samples() -> AsyncIterator[bytes]:
            previous, sample = None, first
            while True:
                paired = pair_stats(sample, previous)
                yield json.dumps(paired).encode() + b"\n"
                previous = paired
                await trio.sleep(interval)
                try:
                    sample = await self.engine.stats(id)
                except ShoalError:
                    return  # the container went away

        return Response(200, samples(), "application/json")

    # ---------------------------------------------------------------- exec

    async def exec_create(self, request: Request) -> Response:
        body = await request.json(required=True)
        exec_id = await self.engine.exec_create(request.params["id"], body)
        return Response.json({"Id": exec_id}, 201)

    async def exec_start(self, request: Request) -> Response | Hijack:
        exec_id = request.params["id"]
        body = await request.json() or {}
        tty = body.get("Tty")
        if tty is not None and not isinstance(tty, bool):
            raise InvalidArgument("Tty must be a boolean")
        if body.get("Detach"):
            await self.engine.exec_start(exec_id, detach=True, tty=tty)
            return Response.empty(200)
        details = await self.engine.exec_inspect(exec_id)  # NotFound before the connection is taken over
        use_tty = bool(details["ProcessConfig"]["tty"]) if tty is None else tty
        stdin = bool(details.get("OpenStdin"))
        size = body.get("ConsoleSize")

        async def run(raw: RawStream) -> None:
            # The process starts only once the client has the 101 head: output can never
            # arrive in the same read as the head (clients that read the head through a
            # buffer would lose it), and a start error reaches the client in the stream, as
            # Docker reports it.
            try:
                attachment = await self.engine.exec_start(exec_id, detach=False, tty=tty)
            except ShoalError as exc:
                await raw.send_all(encode_output(1, f"{exc}\r\n".encode(), use_tty))
                await raw.send_eof()
                return
            if attachment is None:
                raise HttpError(500, f"exec {exec_id} started detached although attaching was asked for")
            if attachment.tty and isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
                await self.engine.exec_resize(exec_id, size[0], size[1])
            await pump(raw, attachment, stdin=stdin)  # closes the attachment when done

        return Hijack(run, content_type(use_tty))

    async def exec_resize(self, request: Request) -> Response:
        await self.engine.exec_resize(request.params["id"], _required_int(request, "h"), _required_int(request, "w"))
        return Response.empty(200)

    async def exec_inspect(self, request: Request) -> Response:
        return Response.json(await self.engine.exec_inspect(request.params["id"]))
