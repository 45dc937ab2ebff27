"""Image and volume endpoints against in-memory stores."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fake_engine import Served

from shoal.errors import NotFound
from shoal.slots import ImageRecord, VolumeRecord


class FakeImages:
    """Records what import receives; keeps images in a dict by name."""

    def __init__(self) -> None:
        self.images: dict[str, ImageRecord] = {}
        self.chunks: list[int] = []

    async def import_rootfs(self, source: str | AsyncIterator[bytes], reference: str | None,
                            config: Mapping[str, Any], comment: str = "") -> ImageRecord:  # fmt: skip
        assert not isinstance(source, str)
        size = 0
        async for chunk in source:
            self.chunks.append(len(chunk))
            size += len(chunk)
        name = f"docker.io/library/{reference}" if reference else ""
        image = ImageRecord("sha256:" + f"{size:x}".rjust(64, "0"), (name,) if name else (), ("sha256:l1",),
                            {"config": dict(config), "history": [{"comment": comment}]}, size,
                            "2024-01-01T00:00:00Z")  # fmt: skip
        self.images[name or image.id] = image
        return image

    async def get(self, reference: str) -> ImageRecord:
        for name, image in self.images.items():
            if reference in (name, image.id) or name == f"docker.io/library/{reference}":
                return image
        raise NotFound(f"No such image: {reference}")

    async def list(self) -> list[ImageRecord]:
        return list({i.id: i for i in self.images.values()}.values())

    async def tag(self, reference: str, new_reference: str) -> None:
        image = await self.get(reference)
        image = dataclasses.replace(image, names=(*image.names, f"docker.io/library/{new_reference}"))
        for name in image.names:
            self.images[name] = image

    async def remove(self, reference: str, force: bool = False, in_use: Mapping[str, str] | None = None) -> list[dict[str, str]]:
        image = await self.get(reference)
        names = [n for n, i in self.images.items() if i.id == image.id]
        for n in names:
            del self.images[n]
        return [{"Untagged": n} for n in names] + [{"Deleted": image.id}]


class FakeVolumes:
    def __init__(self) -> None:
        self.volumes: dict[str, VolumeRecord] = {}

    async def create(self, name: str, labels: Mapping[str, str], options: Mapping[str, str] | None = None) -> VolumeRecord:
        name = name or "generated"
        return self.volumes.setdefault(name, VolumeRecord(name, "local", f"/v/{name}", dict(labels), "now", dict(options or {})))

    async def get(self, name: str) -> VolumeRecord:
        if name not in self.volumes:
            raise NotFound(f"get {name}: no such volume")
        return self.volumes[name]

    async def list(self) -> list[VolumeRecord]:
        return sorted(self.volumes.values(), key=lambda v: v.name)

    async def remove(self, name: str) -> None:
        await self.get(name)
        del self.volumes[name]


async def test_import_streams_the_body_and_answers_json_lines(served: Served) -> None:
    served.api.images = store = FakeImages()  # type: ignore[assignment]
    payload = b"x" * (1024 * 1024)

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 65536):
            yield payload[i : i + 65536]

    async with served.client() as client:
        r = await client.post(
            "/v1.50/images/create",
            params=[("fromSrc", "-"), ("repo", "base"), ("tag", "1"), ("changes", 'CMD ["sh"]'), ("changes", "ENV A=b")],
            content=body(),
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "sha256:" + f"{len(payload):x}".rjust(64, "0")}
        assert sum(store.chunks) == len(payload) and max(store.chunks) <= 65536  # streamed, not buffered whole
        image = await store.get("base:1")
        assert image.config["config"] == {"Cmd": ["sh"], "Env": ["A=b"]}

        listed = (await client.get("/images/json")).json()
        assert listed[0]["RepoTags"] == ["base:1"]
        inspected = (await client.get("/images/base:1/json")).json()
        assert inspected["Config"] == {"Cmd": ["sh"], "Env": ["A=b"]} and inspected["RootFS"]["Layers"] == ["sha256:l1"]
        assert (await client.post("/images/base:1/tag", params={"repo": "other/name", "tag": "2"})).status_code == 201
        assert (await client.get("/images/other/name:2/json")).status_code == 200
        assert (await client.get("/images/json", params={"filters": '{"reference": ["other/*"]}'})).json()[0][
            "RepoTags"
        ] == ["base:1", "other/name:2"]
        removed = (await client.delete("/images/base:1")).json()
        assert removed == [{"Untagged": "docker.io/library/base:1"}, {"Untagged": "docker.io/library/other/name:2"},
                           {"Deleted": image.id}]  # fmt: skip
        r = await client.get("/images/base:1/json")
        assert r.status_code == 404 and r.json() == {"message": "No such image: base:1"}


async def test_pull_is_a_clean_501_and_bad_changes_are_400(served: Served) -> None:
    served.api.images = FakeImages()  # type: ignore[assignment]
    async with served.client() as client:
        r = await client.post("/images/create", params={"fromImage": "busybox", "tag": "latest"})
        assert r.status_code == 501 and "pulling images is not available" in r.json()["message"]
        r = await client.post("/images/create", params={"fromSrc": "-", "repo": "x", "changes": "RUN make"}, content=b"t")
        assert r.status_code == 400 and "RUN is not a valid change command" in r.json()["message"]


async def test_volumes(served: Served) -> None:
    async with served.client() as client:
        assert (await client.get("/volumes")).json() == {"Volumes": [], "Warnings": []}
        assert (await client.post("/volumes/create", json={"Name": "v"})).status_code == 501
        served.api.volumes = FakeVolumes()  # type: ignore[assignment]
        r = await client.post("/volumes/create", json={"Name": "data", "Labels": {"a": "1"}})
        assert r.status_code == 201 and r.json()["Mountpoint"] == "/v/data"
        assert [v["Name"] for v in (await client.get("/volumes")).json()["Volumes"]] == ["data"]
        assert (await client.get("/volumes", params={"filters": '{"label": ["a=2"]}'})).json()["Volumes"] == []
        assert (await client.get("/volumes/data")).json()["Labels"] == {"a": "1"}
        assert (await client.delete("/volumes/data")).status_code == 204
        r = await client.delete("/volumes/data")
        assert r.status_code == 404 and "no such volume" in r.json()["message"]
