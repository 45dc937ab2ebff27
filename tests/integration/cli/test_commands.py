"""The other verbs against a fake daemon: the requests they make and what they print."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time

import pytest

from shoal.cli import main

from .conftest import run_cli
from .fakedaemon import Exchange, FakeDaemon, frame

NOW = int(time.time())
SUMMARY = {"Id": "c" * 64, "Names": ["/web"], "Image": "busybox", "Command": "sleep 1000", "Created": NOW - 125,
           "State": "running", "Status": "Up 2 minutes", "Labels": {},
           "Ports": [{"PrivatePort": 80, "PublicPort": 8080, "IP": "0.0.0.0", "Type": "tcp"}]}  # fmt: skip


def test_ps_table(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.route("GET", "/containers/json")(lambda ex: ex.send_json(200, [SUMMARY]))
    assert main(["ps", "-a", "-f", "status=running"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert lines[1] == ("cccccccccccc   busybox   \"sleep 1000\"   2 minutes ago   Up 2 minutes   "
                        "0.0.0.0:8080->80/tcp   web")  # fmt: skip
    query = daemon.requests[0].query
    assert query["all"] == "1" and json.loads(query["filters"]) == {"status": {"running": True}}


def test_ps_quiet_and_format(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.route("GET", "/containers/json")(lambda ex: ex.send_json(200, [SUMMARY]))
    assert main(["ps", "-q", "--no-trunc"]) == 0
    assert capsys.readouterr().out == "c" * 64 + "\n"
    assert main(["ps", "--format", "{{.Names}} {{.State}}"]) == 0
    assert capsys.readouterr().out == "web running\n"
    assert "all" not in daemon.requests[0].query


def _logs_daemon(daemon: FakeDaemon, tty: bool) -> None:
    daemon.route("GET", r"/containers/\w+/json")(lambda ex: ex.send_json(200, {"Id": "c" * 64, "Config": {"Tty": tty}}))

    @daemon.route("GET", r"/containers/\w+/logs")
    def logs(ex: Exchange) -> None:
        kind = "raw-stream" if tty else "multiplexed-stream"
        ex.start_chunked(f"application/vnd.docker.{kind}")
        data = frame(1, b"out 1\n") + frame(2, b"err 1\n") + frame(1, b"out 2\n")
        step = len(data) if tty else 5  # frames split across chunks
        for cut in range(0, len(data), step):
            ex.chunk(data[cut : cut + step])
        ex.end_chunks()


def test_logs_keeps_streams_apart(daemon: FakeDaemon, capsysbinary) -> None:
    _logs_daemon(daemon, tty=False)
    assert main(["logs", "-f", "-t", "--tail", "10", "--since", "10m", "web"]) == 0
    captured = capsysbinary.readouterr()
    assert (captured.out, captured.err) == (b"out 1\nout 2\n", b"err 1\n")
    query = daemon.find("GET", r"/containers/web/logs")[0].query
    assert {k: query[k] for k in ("stdout", "stderr", "follow", "timestamps", "tail")} == {
        "stdout": "1", "stderr": "1", "follow": "1", "timestamps": "1", "tail": "10"}  # fmt: skip
    assert abs(float(query["since"]) - (time.time() - 600)) < 60


def test_logs_of_a_tty_container_are_raw(daemon: FakeDaemon, capsysbinary) -> None:
    _logs_daemon(daemon, tty=True)
    assert main(["logs", "web"]) == 0
    assert capsysbinary.readouterr().out == frame(1, b"out 1\n") + frame(2, b"err 1\n") + frame(1, b"out 2\n")


def test_logs_bad_since(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "--since", "yesterday", "web"]) == 125
    assert 'invalid argument "yesterday" for "--since" flag' in capsys.readouterr().err


def test_exec_streams_and_returns_the_exit_code(daemon: FakeDaemon) -> None:
    @daemon.route("POST", r"/containers/\w+/exec")
    def create(ex: Exchange) -> None:
        ex.send_json(201, {"Id": "e1"})

    @daemon.route("POST", "/exec/e1/start")
    def start(ex: Exchange) -> None:
        ex.upgrade(tty=False)
        stdin = b""
        while data := ex.sock.recv(65536):
            stdin += data
        ex.wfile.write(frame(1, stdin.upper()) + frame(2, b"done\n"))
        ex.wfile.flush()

    daemon.route("GET", "/exec/e1/json")(lambda ex: ex.send_json(200, {"Running": False, "ExitCode": 7}))
    result = run_cli("exec", "-i", "-e", "A=1", "-u", "nobody", "-w", "/tmp", "web", "tr", "a-z", "A-Z", input=b"abc\n")
    assert (result.returncode, result.stdout, result.stderr) == (7, b"ABC\n", b"done\n")
    body = daemon.requests[0].json()
    assert body["Cmd"] == ["tr", "a-z", "A-Z"] and body["Env"] == ["A=1"]
    assert (body["User"], body["WorkingDir"], body["AttachStdin"], body["Tty"]) == ("nobody", "/tmp", True, False)
    assert daemon.requests[1].json() == {"Detach": False, "Tty": False}
    assert daemon.requests[1].headers["upgrade"] == "tcp"


def test_exec_detached(daemon: FakeDaemon) -> None:
    daemon.route("POST", r"/containers/\w+/exec")(lambda ex: ex.send_json(201, {"Id": "e2"}))
    daemon.route("POST", "/exec/e2/start")(lambda ex: ex.send_json(200, None))
    assert main(["exec", "-d", "web", "sleep", "5"]) == 0
    assert daemon.requests[1].json() == {"Detach": True, "Tty": False}
    assert "upgrade" not in daemon.requests[1].headers


@pytest.mark.parametrize(
    ("argv", "method", "path", "query"),
    [(["stop", "-t", "3", "web"], "POST", "/containers/web/stop", {"t": "3"}),
     (["stop", "-s", "SIGINT", "web"], "POST", "/containers/web/stop", {"signal": "SIGINT"}),
     (["kill", "-s", "HUP", "web"], "POST", "/containers/web/kill", {"signal": "HUP"}),
     (["restart", "web"], "POST", "/containers/web/restart", {}),
     (["rm", "-f", "-v", "web"], "DELETE", "/containers/web", {"force": "1", "v": "1"}),
     (["pause", "web"], "POST", "/containers/web/pause", {}),
     (["unpause", "web"], "POST", "/containers/web/unpause", {})],
)  # fmt: skip
def test_simple_verbs_echo_names(daemon: FakeDaemon, capsys, argv, method, path, query) -> None:
    daemon.route(method, path)(lambda ex: ex.send_json(204, None))
    assert main(argv) == 0
    assert capsys.readouterr().out == "web\n"
    assert [(r.method, r.path, r.query) for r in daemon.requests] == [(method, path, query)]


def test_errors_come_from_the_daemon(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    @daemon.route("POST", r"/containers/(\w+)/stop")
    def stop(ex: Exchange) -> None:
        if "ghost" in ex.request.path:
            return ex.error(404, "No such container: ghost")
        if "idle" in ex.request.path:
            return ex.send_json(304, None)
        ex.send_json(204, None)

    assert main(["stop", "web", "ghost", "idle"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "web\nidle\n"  # 304 (already stopped) is not an error, as with docker
    assert captured.err == "Error response from daemon: No such container: ghost\n"


def test_wait_rename_top(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.route("POST", "/containers/web/wait")(lambda ex: ex.send_json(200, {"StatusCode": 137}))
    daemon.route("POST", "/containers/web/rename")(lambda ex: ex.send_json(204, None))
    daemon.route("GET", "/containers/web/top")(lambda ex: ex.send_json(200, {
        "Titles": ["UID", "PID", "CMD"], "Processes": [["root", "4242", "sleep 1000"]]}))  # fmt: skip
    assert main(["wait", "web"]) == 0
    assert main(["rename", "web", "api"]) == 0
    assert main(["top", "web", "aux"]) == 0
    assert capsys.readouterr().out.splitlines() == ["137", "UID    PID    CMD", "root   4242   sleep 1000"]
    assert daemon.requests[1].query == {"name": "api"}
    assert daemon.requests[2].query == {"ps_args": "aux"}


def test_inspect(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    document = {"Id": "c" * 64, "Name": "/web", "State": {"Pid": 4242, "Running": True}}
    daemon.route("GET", "/containers/web/json")(lambda ex: ex.send_json(200, document))
    daemon.route("GET", "/images/busybox/json")(lambda ex: ex.send_json(200, {"Id": "sha256:abc"}))
    assert main(["inspect", "web"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == [document] and out.startswith("[\n    {\n")
    assert main(["inspect", "-f", "{{.State.Pid}} {{.Name}}", "web"]) == 0
    assert capsys.readouterr().out == "4242 /web\n"
    assert main(["inspect", "--format", "{{.Id}}", "busybox", "nothing"]) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("sha256:abc\n", "Error: No such object: nothing\n")


def test_stats_no_stream(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    sample = {
        "id": "c" * 64,
        "name": "/web",
        "memory_stats": {"usage": 100 << 20, "limit": 1 << 30},
        "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
        "pids_stats": {"current": 3},
    }
    daemon.route("GET", "/containers/json")(lambda ex: ex.send_json(200, [SUMMARY]))
    daemon.route("GET", r"/containers/\w+/stats")(lambda ex: ex.send_json(200, sample))
    assert main(["stats", "--no-stream"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.split(r"\s{3,}", lines[0]) == ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
                                     "BLOCK I/O", "PIDS"]  # fmt: skip
    assert lines[1].split() == ["cccccccccccc", "web", "40.00%", "100MiB", "/", "1GiB", "9.77%", "0B", "/", "0B",
                                "0B", "/", "0B", "3"]  # fmt: skip
    assert daemon.find("GET", r"/containers/c+/stats")[0].query == {"stream": "0"}


def _import_route(daemon: FakeDaemon) -> None:
    @daemon.route("POST", "/images/create")
    def create(ex: Exchange) -> None:
        ex.start_chunked()
        ex.chunk(json.dumps({"status": "sha256:" + "f" * 64}).encode() + b"\r\n")
        ex.end_chunks()


def test_import_streams_a_tarball(daemon: FakeDaemon, tmp_path, capsys) -> None:
    _import_route(daemon)
    tarball = tmp_path / "rootfs.tar"
    tarball.write_bytes(b"x" * 300_000)
    assert main(["import", "-m", "base", str(tarball), "localhost:5000/base:1.0"]) == 0
    assert capsys.readouterr().out == "sha256:" + "f" * 64 + "\n"
    request = daemon.requests[0]
    assert request.query == {"fromSrc": "-", "repo": "localhost:5000/base", "tag": "1.0", "message": "base"}
    assert request.headers["transfer-encoding"] == "chunked" and request.body == b"x" * 300_000


def test_import_tars_a_directory(daemon: FakeDaemon, tmp_path) -> None:
    _import_route(daemon)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "sh").write_bytes(b"#!")
    (tmp_path / "bin" / "sh").chmod(0o755)
    os.symlink("bin/sh", tmp_path / "init")
    assert main(["import", str(tmp_path), "base"]) == 0
    with tarfile.open(fileobj=io.BytesIO(daemon.requests[0].body)) as archive:
        members = {m.name: m for m in archive.getmembers()}
        assert sorted(members) == ["bin", "bin/sh", "init"]
        assert members["bin/sh"].mode == 0o755 and archive.extractfile("bin/sh").read() == b"#!"
        assert members["init"].issym() and members["init"].linkname == "bin/sh"
    assert daemon.requests[0].query == {"fromSrc": "-", "repo": "base"}


def test_import_from_stdin_and_stream_errors(daemon: FakeDaemon) -> None:
    @daemon.route("POST", "/images/create")
    def create(ex: Exchange) -> None:
        ex.start_chunked()
        ex.chunk(json.dumps({"errorDetail": {"message": "not a tar archive"}, "error": "not a tar archive"}).encode())
        ex.end_chunks()

    result = run_cli("import", "-", "base", input=b"garbage")
    assert result.returncode == 1
    assert result.stderr == b"Error response from daemon: not a tar archive\n"
    assert daemon.requests[0].body == b"garbage"


def test_pull_and_push_quiet_print_only_the_reference(daemon: FakeDaemon, capsys) -> None:
    def progress(ex: Exchange) -> None:
        ex.start_chunked()
        ex.chunk(json.dumps({"status": "Downloading", "id": "abc", "progressDetail": {}}).encode() + b"\r\n")
        ex.end_chunks()

    daemon.route("POST", "/images/create")(progress)
    daemon.route("POST", r"/images/[\w.:%/-]+/push")(progress)
    assert main(["pull", "-q", "127.0.0.1:5000/lib/bb"]) == 0
    assert capsys.readouterr().out == "127.0.0.1:5000/lib/bb:latest\n"
    assert daemon.requests[0].query == {"fromImage": "127.0.0.1:5000/lib/bb", "tag": "latest"}
    assert main(["push", "-q", "127.0.0.1:5000/lib/bb:2"]) == 0
    assert capsys.readouterr().out == "127.0.0.1:5000/lib/bb:2\n"
    assert daemon.requests[1].query == {"tag": "2"}


def test_quiet_pull_reports_the_stream_error(daemon: FakeDaemon, capsys) -> None:
    @daemon.route("POST", "/images/create")
    def create(ex: Exchange) -> None:
        ex.start_chunked()
        ex.chunk(json.dumps({"errorDetail": {"message": "manifest unknown"}, "error": "manifest unknown"}).encode())
        ex.end_chunks()

    assert main(["pull", "-q", "127.0.0.1:5000/lib/nosuch:1"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "Error response from daemon: manifest unknown\n"


def test_import_missing_file(daemon: FakeDaemon, capsys) -> None:
    assert main(["import", "/nonexistent.tar", "base"]) == 1
    assert capsys.readouterr().err == "open /nonexistent.tar: no such file or directory\n"
    assert daemon.requests == []


def test_images_rmi_tag(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.route("GET", "/images/json")(
        lambda ex: ex.send_json(
            200,
            [{"Id": "sha256:" + "d" * 64, "RepoTags": ["busybox:latest"], "Created": NOW - 7200, "Size": 4_860_000}],
        )
    )
    daemon.route("DELETE", "/images/busybox")(lambda ex: ex.send_json(200, [
        {"Untagged": "busybox:latest"}, {"Deleted": "sha256:" + "d" * 64}]))  # fmt: skip
    daemon.route("POST", "/images/busybox/tag")(lambda ex: ex.send_json(201, None))
    assert main(["images"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "REPOSITORY   TAG      IMAGE ID       CREATED       SIZE",
        "busybox      latest   dddddddddddd   2 hours ago   4.86MB",
    ]
    assert main(["rmi", "busybox"]) == 0
    assert capsys.readouterr().out == f"Untagged: busybox:latest\nDeleted: sha256:{'d' * 64}\n"
    assert main(["tag", "busybox", "mine/bb:v1"]) == 0
    assert daemon.requests[-1].query == {"repo": "mine/bb", "tag": "v1"}


def test_events_version_info(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    @daemon.route("GET", "/events")
    def events(ex: Exchange) -> None:
        ex.start_chunked()
        for action in ("create", "start"):
            ex.chunk(
                json.dumps(
                    {
                        "Type": "container",
                        "Action": action,
                        "Actor": {"ID": "abc", "Attributes": {"name": "w"}},
                        "time": NOW,
                        "timeNano": NOW * 10**9,
                    }
                ).encode()
                + b"\n"
            )
        ex.end_chunks()

    daemon.route("GET", "/version")(
        lambda ex: ex.send_json(
            200, {"Version": "0.1.0", "ApiVersion": "1.50", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64"}
        )
    )
    daemon.route("GET", "/info")(
        lambda ex: ex.send_json(
            200, {"Containers": 2, "ContainersRunning": 1, "NCPU": 8, "MemTotal": 16 << 30, "ServerVersion": "0.1.0"}
        )
    )
    assert main(["events", "--filter", "type=container", "--until", "0s"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "container create abc (name=w)",
        "container start abc (name=w)",
    ]
    assert main(["version", "--format", "{{.Server.ApiVersion}}"]) == 0
    assert capsys.readouterr().out == "1.50\n"
    assert main(["version"]) == 0
    out = capsys.readouterr().out
    assert " API version:       1.50\n" in out and "  API version:      1.50 (minimum version 1.24)\n" in out
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert " Containers: 2" in out and "  Running: 1" in out and " Total Memory: 16GiB" in out


def test_unknown_endpoint_is_a_clean_error(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pause", "web"]) == 1
    assert capsys.readouterr().err == "Error response from daemon: page not found\n"


def test_cli_client_imports_no_trio(daemon: FakeDaemon) -> None:
    daemon.route("GET", "/containers/json")(lambda ex: ex.send_json(200, []))
    code = ("import sys; from shoal.cli import main; main(['ps'])\n"
            "print(sorted(m for m in ('trio', 'pluggy', 'http.client', 'email') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "[]"
