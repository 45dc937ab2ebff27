"""The registry's filesystem storage: shared blobs, per-repository links, tags and uploads.

Layout under the storage root::

    blobs/sha256/<hex>                         every blob and manifest, once (``BlobStore``)
    ingest/                                    blobs being verified (``BlobStore``)
    repositories/<name>/_layers/<hex>          a blob belongs to the repository
    repositories/<name>/_manifests/<hex>       a manifest belongs to it (holds its media type)
    repositories/<name>/_tags/<tag>            a tag -> the manifest digest it points at
    repositories/<name>/_referrers/<subject hex>/<hex>   a manifest whose subject is <subject>
    uploads/<uuid>/data, uploads/<uuid>/name   an upload session in progress

A blob is visible in a repository only through its link, so a digest known elsewhere in
the registry is not readable from a repository that never got it (except by an explicit
cross-repository mount). Links and tags are small files replaced atomically. Everything
here blocks; the server calls it from worker threads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.errors import InvalidArgument, NotFound
from shoal.plugins.images.blobs import BlobStore, check_digest

_NAME = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_UUID = re.compile(r"[0-9a-f]{32}")
#: Uploads untouched for this long are dropped by ``gc``.
UPLOAD_TTL = 24 * 3600


def check_name(name: str) -> str:
    """Return a repository name if it follows the spec's grammar; ``InvalidArgument`` otherwise."""
    if len(name) > 255 or not _NAME.fullmatch(name):
        raise InvalidArgument(f"invalid repository name {name!r}")
    return name


def check_tag(tag: str) -> str:
    """Return a tag if well-formed; ``InvalidArgument`` otherwise."""
    if not _TAG.fullmatch(tag):
        raise InvalidArgument(f"invalid tag {tag!r}")
    return tag


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    temp.write_bytes(data)
    os.replace(temp, path)


@dataclass
class Upload:
    """An upload session: its repository, file, bytes so far and running hash."""

    id: str
    name: str
    path: Path
    size: int
    hasher: Any = None


class RegistryStorage:
    """Blobs, manifests, tags and uploads of every repository under one root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = BlobStore.open(root)
        self.repos = root / "repositories"
        self.uploads_dir = root / "uploads"
        self.repos.mkdir(exist_ok=True)
        self.uploads_dir.mkdir(exist_ok=True)
        # Running hashes of open uploads, so finishing one does not read it again.
        self._hashers: dict[str, Any] = {}

    # ------------------------------------------------------------------ repositories

    def _repo(self, name: str) -> Path:
        return self.repos / check_name(name)

    def repository_exists(self, name: str) -> bool:
        """Tell whether anything was ever pushed to ``name``."""
        return (self._repo(name) / "_manifests").is_dir() or (self._repo(name) / "_layers").is_dir()

    def catalog(self) -> list[str]:
        """Every repository holding at least one manifest, sorted."""
        names = []
        for manifests in self.repos.glob("**/_manifests"):
            if manifests.is_dir() and any(manifests.iterdir()):
                names.append(str(manifests.parent.relative_to(self.repos)))
        return sorted(names)

    # ------------------------------------------------------------------ blobs

    def blob_in_repo(self, name: str, digest: str) -> Path:
        """The file of a blob linked into ``name``; ``NotFound`` if it is not."""
        check_digest(digest)
        path = self.blobs.path(digest)
        if not (self._repo(name) / "_layers" / path.name).exists() or not path.is_file():
            raise NotFound(f"blob {digest} unknown to repository {name}")
        return path

    def link_blob(self, name: str, digest: str) -> None:
        """Make a stored blob visible in a repository."""
        link = self._repo(name) / "_layers" / self.blobs.path(digest).name
        if not link.exists():
            _write_atomic(link, b"")

    def mount_blob(self, name: str, digest: str, source: str) -> bool:
        """Link a blob another repository has into ``name``; False if the source lacks it."""
        try:
            self.blob_in_repo(source, digest)
        except (NotFound, InvalidArgument):
            return False
        self.link_blob(name, digest)
        return True

    def unlink_blob(self, name: str, digest: str) -> None:
        """Remove a blob from a repository (the bytes go at the next ``gc``)."""
        self.blob_in_repo(name, digest)
        (self._repo(name) / "_layers" / self.blobs.path(digest).name).unlink(missing_ok=True)

    # ------------------------------------------------------------------ uploads

    def start_upload(self, name: str) -> Upload:
        """Open an upload session for ``name``."""
        check_name(name)
        upload_id = uuid.uuid4().hex
        directory = self.uploads_dir / upload_id
        directory.mkdir()
        (directory / "name").write_text(name)
        (directory / "data").touch()
        self._hashers[upload_id] = hashlib.sha256()
        return Upload(upload_id, name, directory / "data", 0, self._hashers[upload_id])

    def upload(self, name: str, upload_id: str) -> Upload:
        """An open upload session of ``name``; ``NotFound`` if unknown."""
        directory = self.uploads_dir / upload_id
        if not _UUID.fullmatch(upload_id) or not (directory / "name").is_file() or (directory / "name").read_text() != name:
            raise NotFound(f"upload {upload_id} unknown")
        data = directory / "data"
        return Upload(upload_id, name, data, data.stat().st_size, self._hashers.get(upload_id))

    def append(self, upload: Upload, chunks: list[bytes]) -> int:
        """Append bytes to an upload; returns its new size."""
        with open(upload.path, "ab") as out:
            for chunk in chunks:
                out.write(chunk)
                if upload.hasher is not None:
                    upload.hasher.update(chunk)
                upload.size += len(chunk)
        return upload.size

    def finish_upload(self, upload: Upload, digest: str) -> None:
        """Verify an upload against ``digest``, store it and link it; ``InvalidArgument`` on mismatch.

        A mismatching upload is discarded whole, as the spec asks.
        """
        check_digest(digest)
        hasher = upload.hasher
        if hasher is None:  # the server restarted mid-upload: hash what is there
            hasher = hashlib.sha256()
            with open(upload.path, "rb") as f:
                while data := f.read(1 << 20):
                    hasher.update(data)
        actual = "sha256:" + hasher.hexdigest()
        try:
            if actual != digest:
                raise InvalidArgument(f"digest mismatch: the upload hashes to {actual}, not {digest}")
            os.replace(upload.path, self.blobs.path(digest))
            self.link_blob(upload.name, digest)
        finally:
            self.cancel_upload(upload)

    def cancel_upload(self, upload: Upload) -> None:
        """Drop an upload session and its bytes."""
        self._hashers.pop(upload.id, None)
        shutil.rmtree(self.uploads_dir / upload.id, ignore_errors=True)

    # ------------------------------------------------------------------ manifests

    def manifest_digest(self, name: str, reference: str) -> str:
        """The digest a tag or digest reference names in ``name``; ``NotFound`` if none."""
        repo = self._repo(name)
        if reference.startswith("sha256:"):
            check_digest(reference)
            if not (repo / "_manifests" / reference.removeprefix("sha256:")).exists():
                raise NotFound(f"manifest {reference} unknown to repository {name}")
            return reference
        try:
            return (repo / "_tags" / check_tag(reference)).read_text()
        except FileNotFoundError:
            raise NotFound(f"manifest {name}:{reference} unknown") from None

    def manifest(self, name: str, digest: str) -> tuple[bytes, str]:
        """A manifest's bytes and media type."""
        media_type = (self._repo(name) / "_manifests" / digest.removeprefix("sha256:")).read_text()
        return self.blobs.read(digest), media_type

    def has_manifest(self, name: str, digest: str) -> bool:
        """Tell whether ``name`` holds the manifest ``digest``."""
        return (self._repo(name) / "_manifests" / digest.removeprefix("sha256:")).exists()

    def put_manifest(self, name: str, raw: bytes, media_type: str, tag: str | None, subject: str | None, descriptor: dict[str, Any]) -> str:
        """Store a manifest (already checked), link it, tag it, record it as a referrer."""
        digest = self.blobs.put(raw)
        repo = self._repo(name)
        _write_atomic(repo / "_manifests" / digest.removeprefix("sha256:"), media_type.encode())
        if tag:
            _write_atomic(repo / "_tags" / check_tag(tag), digest.encode())
        if subject:
            _write_atomic(repo / "_referrers" / subject.removeprefix("sha256:") / digest.removeprefix("sha256:"),
                          json.dumps(descriptor).encode())  # fmt: skip
        return digest

    def delete_manifest(self, name: str, reference: str) -> None:
        """Delete a tag, or a manifest by digest (with every tag pointing at it)."""
        repo = self._repo(name)
        if not reference.startswith("sha256:"):
            tag = repo / "_tags" / check_tag(reference)
            if not tag.exists():
                raise NotFound(f"manifest {name}:{reference} unknown")
            tag.unlink()
            return
        digest = self.manifest_digest(name, reference)
        for tag in self._tag_files(name):
            if tag.read_text() == digest:
                tag.unlink(missing_ok=True)
        (repo / "_manifests" / digest.removeprefix("sha256:")).unlink(missing_ok=True)
        for link in (repo / "_referrers").glob(f"*/{digest.removeprefix('sha256:')}"):
            link.unlink(missing_ok=True)

    def _tag_files(self, name: str) -> list[Path]:
        directory = self._repo(name) / "_tags"
        return [p for p in directory.iterdir() if not p.name.startswith(".")] if directory.is_dir() else []

    def tags(self, name: str) -> list[str]:
        """A repository's tags, sorted; ``NotFound`` for an unknown repository."""
        if not self.repository_exists(name):
            raise NotFound(f"repository {name} unknown")
        return sorted(p.name for p in self._tag_files(name))

    def referrers(self, name: str, subject: str) -> list[dict[str, Any]]:
        """Descriptors of the manifests in ``name`` whose subject is ``subject``."""
        check_digest(subject)
        directory = self._repo(name) / "_referrers" / subject.removeprefix("sha256:")
        if not directory.is_dir():
            return []
        out = []
        for entry in sorted(directory.iterdir()):
            if not entry.name.startswith(".") and self.has_manifest(name, "sha256:" + entry.name):
                out.append(json.loads(entry.read_bytes()))
        return out

    # ------------------------------------------------------------------ gc

    def gc(self, grace: float = UPLOAD_TTL, now: float | None = None) -> list[str]:
        """Delete blobs no manifest references, and stale uploads.

        A blob pushed but not (yet) referenced by a manifest survives for ``grace``
        seconds after its upload, so a push in progress keeps its layers.

        Args:
            grace: seconds an unreferenced upload is kept.
            now: the current time (tests).
        Returns:
            The digests deleted.
        """
        cutoff = (now or time.time()) - grace
        keep: set[str] = set()
        links: list[Path] = []
        for repo_manifests in self.repos.glob("**/_manifests"):
            links.extend(p for p in (repo_manifests.parent / "_layers").glob("*") if not p.name.startswith("."))
        for repo_layers in self.repos.glob("**/_layers"):
            if not (repo_layers.parent / "_manifests").is_dir():
                links.extend(p for p in repo_layers.glob("*") if not p.name.startswith("."))
        for repo_manifests in self.repos.glob("**/_manifests"):
            for entry in repo_manifests.iterdir():
                if entry.name.startswith("."):
                    continue
                digest = "sha256:" + entry.name
                keep.add(digest)
                try:
                    document = json.loads(self.blobs.read(digest))
                except (NotFound, ValueError):
                    continue
                for item in [document.get("config"), *(document.get("layers") or []), *(document.get("manifests") or [])]:
                    if isinstance(item, dict) and isinstance(item.get("digest"), str):
                        keep.add(item["digest"])
        for link in links:
            digest = "sha256:" + link.name
            if digest not in keep and link.stat().st_mtime < cutoff:
                link.unlink(missing_ok=True)
            elif digest not in keep:
                keep.add(digest)
        deleted = sorted(self.blobs.digests() - keep)
        for digest in deleted:
            self.blobs.delete(digest)
        for directory in self.uploads_dir.iterdir():
            if directory.stat().st_mtime < cutoff:
                shutil.rmtree(directory, ignore_errors=True)
        return deleted
