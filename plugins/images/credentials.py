"""Registry credentials: Docker's ``config.json``, the API's ``X-Registry-Auth`` header, and
the ``WWW-Authenticate`` challenges a registry answers with.

``config.json`` keeps ``{"auths": {"<registry>": {"auth": base64("user:password")}}}``;
Docker Hub's key is ``https://index.docker.io/v1/``. Credential helpers (``credsStore``) are
programs outside this engine's reach and are not run.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.errors import InvalidArgument

from .reference import DEFAULT_DOMAIN

#: The key Docker uses for Docker Hub in config.json.
HUB_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or an identity token used as a refresh token)."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""

    def __bool__(self) -> bool:
        return bool(self.username or self.identity_token or self.registry_token)


ANONYMOUS = Credentials()


def config_key(registry: str) -> str:
    """The ``auths`` key of a registry host ("docker.io" -> Docker Hub's URL key)."""
    return HUB_KEY if registry in (DEFAULT_DOMAIN, "index.docker.io", "registry-1.docker.io") else registry


def default_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"cannot read docker config {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def _host_of(key: str) -> str:
    """An ``auths`` key may be a URL ("https://host:5000/v1/") or a bare host."""
    text = re.sub(r"^[a-z]+://", "", key)
    return text.split("/", 1)[0]


def lookup(registry: str, path: Path | None = None) -> Credentials:
    """Credentials stored for a registry in a Docker config file (anonymous if none)."""
    auths = _read_config(path or default_config_path()).get("auths") or {}
    wanted = config_key(registry)
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            continue
        if key == wanted or _host_of(key) == registry or (wanted == HUB_KEY and _host_of(key) in ("index.docker.io", "docker.io")):
            return _entry_credentials(entry)
    return ANONYMOUS


def _entry_credentials(entry: dict[str, Any]) -> Credentials:
    user, password = entry.get("username", ""), entry.get("password", "")
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidArgument("malformed 'auth' entry in the docker config") from None
    return Credentials(user, password, entry.get("identitytoken", ""), entry.get("registrytoken", ""))


def store(registry: str, credentials: Credentials, path: Path | None = None) -> Path:
    """Save credentials for a registry the way ``docker login`` does; return the file."""
    target = path or default_config_path()
    data = _read_config(target)
    auths = data.setdefault("auths", {})
    entry: dict[str, Any] = {"auth": base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()}
    if credentials.identity_token:
        entry = {"auth": "", "identitytoken": credentials.identity_token}
    auths[config_key(registry)] = entry
    _write_config(target, data)
    return target


def forget(registry: str, path: Path | None = None) -> bool:
    """Remove a registry's credentials (``docker logout``); True if there were any."""
    target = path or default_config_path()
    data = _read_config(target)
    auths = data.get("auths") or {}
    keys = [k for k in auths if k == config_key(registry) or _host_of(k) == registry]
    for key in keys:
        del auths[key]
    if keys:
        _write_config(target, data)
    return bool(keys)


def _write_config(target: Path, data: dict[str, Any]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".config-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent="\t")
        os.chmod(temp, 0o600)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def from_header(value: str | None) -> Credentials | None:
    """Decode the Engine API's ``X-Registry-Auth`` header (base64url JSON); None if absent or empty."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        padded = (text + "=" * (-len(text) % 4)).replace("-", "+").replace("_", "/")
        decoded = base64.b64decode(padded, validate=True)
        data = json.loads(decoded) if decoded.strip() else {}
    except (binascii.Error, ValueError):
        raise InvalidArgument("malformed X-Registry-Auth header: expected base64url-encoded JSON") from None
    if not isinstance(data, dict):
        raise InvalidArgument("malformed X-Registry-Auth header: expected a JSON object")
    result = Credentials(
        str(data.get("username") or ""), str(data.get("password") or ""),
        str(data.get("identitytoken") or ""), str(data.get("registrytoken") or ""),
    )  # fmt: skip
    return result or None


def to_header(credentials: Credentials, registry: str) -> str:
    """Encode credentials as an ``X-Registry-Auth`` header value."""
    document = {"username": credentials.username, "password": credentials.password, "serveraddress": registry}
    if credentials.identity_token:
        document["identitytoken"] = credentials.identity_token
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode()


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: its scheme ("bearer", "basic") and parameters."""

    scheme: str
    params: dict[str, str]


_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value: ``Bearer realm="...",service="...",scope="..."``."""
    challenges: list[Challenge] = []
    rest = header.strip()
    while rest:
        match = re.match(r"([A-Za-z][A-Za-z0-9_-]*)\s*", rest)
        if not match:
            break
        scheme, rest = match.group(1).lower(), rest[match.end() :]
        params: dict[str, str] = {}
        while True:
            param = _PARAM.match(rest)
            if not param or (param.group(2) is None and not param.group(3) and "=" not in param.group(0)):
                break
            value = param.group(2) if param.group(2) is not None else param.group(3)
            params[param.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            rest = rest[param.end() :]
        challenges.append(Challenge(scheme, params))
        rest = rest.lstrip(", ")
    return challenges
