"""Pure logic of the frontend: routing, version prefixes, framing, detach keys, parameters."""

from __future__ import annotations

import pytest

from shoal.errors import InvalidArgument
from shoal.plugins.engine_api.containers_api import pair_stats
from shoal.plugins.engine_api.http import HttpError
from shoal.plugins.engine_api.images_api import apply_changes, familiar
from shoal.plugins.engine_api.params import normalize_filters, parse_time
from shoal.plugins.engine_api.routes import RouteTable, split_version
from shoal.plugins.engine_api.streams import DetachScanner, frame, parse_detach_keys


async def handler(request):  # pragma: no cover - never called
    raise AssertionError


def test_route_placeholders_and_paths() -> None:
    routes = RouteTable()
    routes.add("GET", "/images/json", handler)
    routes.add("GET", "/images/{name:path}/json", handler)
    routes.add("POST", "/containers/{id}/start", handler)
    assert routes.resolve("GET", "/images/json")[1] == {}
    assert routes.resolve("GET", "/images/host:5000/a/b:1/json")[1] == {"name": "host:5000/a/b:1"}
    assert routes.resolve("POST", "/containers/abc/start/")[1] == {"id": "abc"}
    assert routes.resolve("HEAD", "/images/json")[1] == {}  # HEAD falls back to GET
    with pytest.raises(HttpError) as err:
        routes.resolve("GET", "/containers/abc/start")
    assert err.value.status == 405
    with pytest.raises(HttpError) as err:
        routes.resolve("GET", "/containers/a/b/start")
    assert (err.value.status, err.value.message) == (404, "page not found")
    with pytest.raises(ValueError):
        routes.add("GET", "/images/json", handler)


def test_version_prefix() -> None:
    assert split_version("/v1.45/containers/json") == ("1.45", "/containers/json")
    assert split_version("/_ping") == (None, "/_ping")
    assert split_version("/volumes/v1.2/x") == (None, "/volumes/v1.2/x")
    for bad in ("/v1.51/info", "/v2.0/info", "/v1.23/info", "/vX.1/info"):
        with pytest.raises(HttpError) as err:
            split_version(bad)
        assert err.value.status == 400


def test_framing_and_detach_keys() -> None:
    assert frame(2, b"err") == b"\x02\x00\x00\x00\x00\x00\x00\x03err"
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("a,ctrl-@") == b"a\x00"
    with pytest.raises(InvalidArgument):
        parse_detach_keys("ctrl-1")
    scanner = DetachScanner(b"\x10\x11")
    assert scanner.feed(b"ab\x10") == (b"ab", False)  # a possible start is held back
    assert scanner.feed(b"c") == (b"\x10c", False)
    assert scanner.feed(b"x\x10") == (b"x", False)
    assert scanner.feed(b"\x11rest") == (b"", True)


def test_filters_times_and_changes() -> None:
    assert normalize_filters({"a": ["1"], "b": {"x": True, "y": False}}) == {"a": ["1"], "b": ["x"]}
    with pytest.raises(InvalidArgument):
        normalize_filters(["a"])
    assert parse_time("1700000000.5", "since") == 1700000000.5
    assert parse_time("2024-01-01T00:00:00Z", "since") == 1704067200
    assert parse_time("1h30m", "since", now=10000) == 10000 - 5400
    with pytest.raises(InvalidArgument):
        parse_time("yesterday", "since")
    assert apply_changes(["ENTRYPOINT sh -c", "EXPOSE 80", "LABEL a=b c=d", "WORKDIR /w"]) == {
        "Entrypoint": ["/bin/sh", "-c", "sh -c"],
        "ExposedPorts": {"80/tcp": {}},
        "Labels": {"a": "b", "c": "d"},
        "WorkingDir": "/w",
    }
    assert familiar("docker.io/library/busybox:1") == "busybox:1"
    assert familiar("quay.io/a/b:1") == "quay.io/a/b:1"


def test_stats_pairing() -> None:
    first = pair_stats({"read": "t1", "cpu_stats": {"cpu_usage": {"total_usage": 5, "percpu_usage": [1, 2]}}}, None)
    assert first["precpu_stats"] == {"cpu_usage": {"total_usage": 0, "percpu_usage": [0, 0]}}
    assert first["preread"] == "0001-01-01T00:00:00Z"
    second = pair_stats({"read": "t2", "cpu_stats": {"cpu_usage": {"total_usage": 9}}}, first)
    assert second["precpu_stats"] == first["cpu_stats"] and second["preread"] == "t1"
