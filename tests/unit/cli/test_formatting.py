"""``--format`` templates, ps/images rows, event lines and small reference helpers."""

from __future__ import annotations

import json
import time

import pytest

from shoal.cli.client import ClientError, resolve_host, socket_path
from shoal.cli.container_cmds import parse_filters
from shoal.cli.image_cmds import split_reference
from shoal.cli.listing import HEADERS, container_fields, ellipsis, format_ports, image_rows, print_rows
from shoal.cli.run_cmd import start_error_status, with_default_tag
from shoal.cli.system_cmds import format_event
from shoal.cli.template import TemplateError, render

DOC = {"State": {"Pid": 4242, "Running": True, "Health": None}, "Name": "/web", "Config": {"Env": ["A=1", "B=2"],
       "Labels": {"b": "2", "a": "1"}}, "Ratio": 2.0}  # fmt: skip


@pytest.mark.parametrize(
    ("template", "text"),
    [("{{.State.Pid}}", "4242"), ("{{ .State.Running }}", "true"), ("{{.State.Health}}", "<nil>"),
     ("{{.State.Missing}}", "<no value>"), ("{{.Config.Env}}", "[A=1 B=2]"),
     ("{{.Config.Labels}}", "map[a:1 b:2]"), ("{{json .Config.Labels}}", '{"b":"2","a":"1"}'),
     ("pid={{.State.Pid}} name={{.Name}}", "pid=4242 name=/web"), ("{{upper .Name}}", "/WEB"),
     ('{{join .Config.Env ","}}', "A=1,B=2"), ('{{index .Config.Labels "a"}}', "1"), ("{{.Ratio}}", "2"),
     (r"{{.Name}}\t{{.State.Pid}}", "/web\t4242")],
)  # fmt: skip
def test_render(template: str, text: str) -> None:
    assert render(template, DOC) == text


def test_render_dot_and_json_dot() -> None:
    assert json.loads(render("{{json .}}", DOC)) == DOC


@pytest.mark.parametrize("template", ["{{range .Config.Env}}x{{end}}", "{{.Name", "{{}}", '{{printf "%s" .Name}}'])
def test_unsupported_templates_fail_cleanly(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, DOC)


def test_filters_encode_like_docker() -> None:
    assert json.loads(parse_filters(["status=running", "status=paused", "name=web"])) == {
        "status": {"running": True, "paused": True}, "name": {"web": True}}  # fmt: skip
    assert parse_filters([]) is None
    with pytest.raises(ValueError, match="bad format of filter"):
        parse_filters(["running"])


def test_ports_column() -> None:
    ports = [{"PrivatePort": 80, "Type": "tcp", "PublicPort": 8080, "IP": "0.0.0.0"},
             {"PrivatePort": 80, "Type": "tcp", "PublicPort": 8080, "IP": "::"},
             {"PrivatePort": 443, "Type": "tcp"}, {"PrivatePort": 53, "Type": "udp"}]  # fmt: skip
    assert format_ports(ports) == "53/udp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, 443/tcp"


def test_container_fields() -> None:
    now = time.time()
    summary = {"Id": "a" * 64, "Names": ["/web", "/other/link"], "Image": "busybox", "Command": "sh -c 'sleep 1000000'",
               "Created": int(now) - 125, "State": "running", "Status": "Up 2 minutes", "Ports": [],
               "Labels": {"x": "1"}}  # fmt: skip
    fields = container_fields(summary, now)
    assert fields["ID"] == "a" * 12
    assert fields["Command"] == '"sh -c \'sleep 100000…"'
    assert fields["RunningFor"] == "2 minutes ago"
    assert fields["Names"] == "web"
    assert fields["Status"] == "Up 2 minutes"
    assert fields["Labels"] == "x=1"
    untruncated = container_fields(summary, now, trunc=False)
    assert untruncated["ID"] == "a" * 64 and untruncated["Command"] == json.dumps(summary["Command"])
    assert container_fields({"Id": "b" * 64, "Image": "sha256:" + "c" * 64}, now)["Image"] == "c" * 12
    assert ellipsis("abcdef", 4) == "abc…"


def test_image_rows_one_per_tag() -> None:
    now = time.time()
    images = [
        {
            "Id": "sha256:" + "d" * 64,
            "RepoTags": ["busybox:latest", "localhost:5000/bb:1"],
            "Created": int(now) - 7200,
            "Size": 4_860_000,
        },
        {"Id": "sha256:" + "e" * 64, "RepoTags": [], "Created": int(now), "Size": 10},
    ]
    rows = image_rows(images, now)
    assert [(r["Repository"], r["Tag"], r["ID"], r["Size"]) for r in rows] == [
        ("<none>", "<none>", "e" * 12, "10B"), ("busybox", "latest", "d" * 12, "4.86MB"),
        ("localhost:5000/bb", "1", "d" * 12, "4.86MB")]  # fmt: skip
    assert rows[1]["CreatedSince"] == "2 hours ago"


def test_print_rows_table_template(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"ID": "abc", "Names": "web", "Status": "Up"}, {"ID": "defgh", "Names": "db", "Status": "Up"}]
    print_rows(rows, "table {{.ID}}\\t{{.Names}}", (), HEADERS)
    assert capsys.readouterr().out.splitlines() == ["CONTAINER ID   NAMES", "abc            web", "defgh          db"]
    print_rows(rows, "{{.Names}}:{{.ID}}", (), HEADERS)
    assert capsys.readouterr().out.splitlines() == ["web:abc", "db:defgh"]


def test_event_line() -> None:
    event = {
        "Type": "container",
        "Action": "start",
        "Actor": {"ID": "abc", "Attributes": {"name": "web", "image": "bb"}},
        "time": 1_700_000_000,
        "timeNano": 1_700_000_000_123_400_000,
    }
    line = format_event(event)
    assert line.endswith(" container start abc (image=bb, name=web)")
    assert ".1234" in line.split(" ")[0] and not line.split(" ")[0].split(".")[1].startswith("12340")


def test_hosts() -> None:
    assert socket_path("unix:///tmp/x.sock") == "/tmp/x.sock"
    assert socket_path("/tmp/x.sock") == "/tmp/x.sock"
    for bad in ("tcp://1.2.3.4:2375", "unix://"):
        with pytest.raises(ClientError):
            socket_path(bad)
    assert resolve_host("unix:///a") == "unix:///a"


def test_host_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_HOST", "unix:///env.sock")
    assert resolve_host() == "unix:///env.sock"
    monkeypatch.delenv("SHOAL_HOST")
    assert resolve_host() == "unix:///run/shoal/shoal.sock"


def test_references() -> None:
    assert with_default_tag("busybox") == "busybox:latest"
    assert with_default_tag("busybox:1.36") == "busybox:1.36"
    assert with_default_tag("localhost:5000/bb") == "localhost:5000/bb:latest"
    assert with_default_tag("bb@sha256:abc") == "bb@sha256:abc"
    assert split_reference("localhost:5000/bb:1") == ("localhost:5000/bb", "1")
    assert split_reference("localhost:5000/bb") == ("localhost:5000/bb", "")
    assert split_reference("bb") == ("bb", "")


@pytest.mark.parametrize(
    ("message", "status"),
    [('exec: "nope": executable file not found in $PATH', 127), ("open /x: no such file or directory", 127),
     ("exec /etc: permission denied", 126), ("cannot exec a directory: is a directory", 126), ("boom", 125)],
)  # fmt: skip
def test_start_error_status(message: str, status: int) -> None:
    assert start_error_status(message) == status
