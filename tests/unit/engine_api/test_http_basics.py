"""Ping, version, info, routing and error bodies, through httpx over the unix socket."""

from __future__ import annotations

import json

from fake_engine import Served


async def test_ping_has_the_negotiation_headers(served: Served) -> None:
    async with served.client() as client:
        for method in ("GET", "HEAD"):
            r = await client.request(method, "/_ping")
            assert r.status_code == 200
            assert r.headers["api-version"] == "1.50"
            assert r.headers["ostype"] == "linux"
            assert r.headers["docker-experimental"] == "false"
            assert r.headers["cache-control"] == "no-cache, no-store, must-revalidate"
            assert r.headers["pragma"] == "no-cache"
            assert r.headers["builder-version"] == "1"
            assert r.content == (b"OK" if method == "GET" else b"")


async def test_version_prefix(served: Served) -> None:
    async with served.client() as client:
        assert (await client.get("/v1.24/version")).json()["ApiVersion"] == "1.50"
        assert (await client.get("/v1.50/version")).status_code == 200
        r = await client.get("/v1.51/version")
        assert r.status_code == 400
        assert r.json() == {"message": "client version 1.51 is too new. Maximum supported API version is 1.50"}
        r = await client.get("/v1.12/version")
        assert r.status_code == 400 and "too old" in r.json()["message"]


async def test_unknown_route_and_wrong_method(served: Served) -> None:
    async with served.client() as client:
        r = await client.get("/v1.50/nothing/here")
        assert r.status_code == 404 and r.json() == {"message": "page not found"}
        r = await client.delete("/version")
        assert r.status_code == 405 and "GET" in r.json()["message"]


async def test_malformed_json_body_is_400_naming_the_problem(served: Served) -> None:
    async with served.client() as client:
        r = await client.post("/containers/create", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        assert "invalid JSON in the request body" in r.json()["message"]
        r = await client.post("/containers/create", content=b"[1, 2]")
        assert r.status_code == 400 and "JSON object" in r.json()["message"]
        r = await client.post("/containers/create")
        assert r.status_code == 400 and "empty" in r.json()["message"]


async def test_engine_errors_map_to_docker_statuses(served: Served) -> None:
    async with served.client() as client:
        r = await client.get("/containers/nope/json")
        assert r.status_code == 404 and r.json() == {"message": "No such container: nope"}
        r = await client.post("/containers/create", json={"Image": "missing"})
        assert r.status_code == 404
        assert (await client.post("/containers/create?name=one", json={"Image": "img"})).status_code == 201
        r = await client.post("/containers/create?name=one", json={"Image": "img"})
        assert r.status_code == 409 and "already in use" in r.json()["message"]
        r = await client.post("/containers/one/kill?signal=SIGBOGUS")
        assert r.status_code == 400 and "SIGBOGUS" in r.json()["message"]
        r = await client.get("/containers/json?all=maybe")
        assert r.status_code == 400 and "'all'" in r.json()["message"]
        r = await client.get("/containers/json?filters={bad")
        assert r.status_code == 400 and "filters" in r.json()["message"]


async def test_unexpected_exception_is_a_logged_500(served: Served, caplog) -> None:
    async def broken(id: str) -> dict:
        raise RuntimeError("boom")

    served.engine.inspect = broken  # type: ignore[method-assign]
    async with served.client() as client:
        r = await client.get("/containers/x/json")
        assert r.status_code == 500
        assert r.json() == {"message": "internal error: RuntimeError: boom"}
        # The connection survives: the next request on it is answered.
        assert (await client.get("/_ping")).status_code == 200
    assert any("boom" in (rec.exc_text or "") or rec.exc_info for rec in caplog.records)


async def test_keep_alive_serves_many_requests_on_one_connection(served: Served) -> None:
    async with served.client() as client:
        for _ in range(5):
            assert (await client.get("/_ping")).status_code == 200
        created = (await client.post("/containers/create", json={"Image": "img", "Cmd": ["echo", "x"]})).json()
        assert set(created) == {"Id", "Warnings"}
        listed = (await client.get("/containers/json", params={"all": "1"})).json()
        assert [c["Id"] for c in listed] == [created["Id"]]
        assert (await client.get("/containers/json")).json() == []


async def test_info_counts_and_version(served: Served) -> None:
    async with served.client() as client:
        for n in range(2):
            await client.post("/containers/create", json={"Image": "img", "Cmd": ["sleep"]}, params={"name": f"c{n}"})
        assert (await client.post("/containers/c0/start")).status_code == 204
        info = (await client.get("/info")).json()
        assert (info["Containers"], info["ContainersRunning"], info["ContainersStopped"]) == (2, 1, 1)
        assert info["OSType"] == "linux" and info["Images"] == 0
        version = (await client.get("/version")).json()
        assert version["Components"][0]["Name"] == "Engine"
        assert json.dumps(version)
