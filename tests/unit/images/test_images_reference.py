"""Docker reference parsing and normalisation."""

from __future__ import annotations

import pytest

from shoal.errors import InvalidArgument
from shoal.plugins.images.reference import normalise, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
        ("user/app", "docker.io/user/app:latest"),
        ("host:5000/repo:tag", "host:5000/repo:tag"),
        ("host:5000/repo", "host:5000/repo:latest"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/a/b/c:v1.2-rc_3", "localhost:5000/a/b/c:v1.2-rc_3"),
        ("registry.example.com/team/app", "registry.example.com/team/app:latest"),
        ("[::1]:5000/app:1", "[::1]:5000/app:1"),
        (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
        (f"host:5000/x@{DIGEST}", f"host:5000/x@{DIGEST}"),
        (f"busybox:1@{DIGEST}", f"docker.io/library/busybox:1@{DIGEST}"),
        ("a__b-c---d/e_f.g", "docker.io/a__b-c---d/e_f.g:latest"),
    ],
)
def test_normalises_like_docker(text: str, canonical: str) -> None:
    assert normalise(text) == canonical


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "empty"),
        ("Busybox", "lowercase"),
        ("busybox:", "malformed tag"),
        ("busybox:-x", "malformed tag"),
        ("busybox:" + "x" * 129, "malformed tag"),
        ("busybox@sha256:abc", "malformed digest"),
        ("busybox@md5:" + "a" * 32, "malformed digest"),
        ("a//b", "malformed name component"),
        ("-a", "malformed name component"),
        ("a_/b", "malformed name component"),
        ("host:5000/", "names no repository"),
        ("bad_host.com:5000/app", "malformed registry"),
        ("a/" + "b" * 260, "longer than"),
    ],
)
def test_malformed_references_are_named_in_the_error(text: str, complaint: str) -> None:
    with pytest.raises(InvalidArgument, match=complaint) as info:
        parse_reference(text)
    assert "invalid reference format" in str(info.value)


def test_familiar_form_and_parts() -> None:
    ref = parse_reference("busybox")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("docker.io", "library/busybox", "latest", None)
    assert ref.repository == "docker.io/library/busybox"
    assert ref.familiar() == "busybox:latest"
    assert parse_reference("user/app:2").familiar() == "user/app:2"
    assert parse_reference("host:5000/app").familiar() == "host:5000/app:latest"
    assert str(parse_reference(f"busybox@{DIGEST}").with_tag("x")) == "docker.io/library/busybox:x"
