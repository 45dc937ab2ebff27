"""``shoal run``/``create``/``start`` against a fake daemon: request order, hijacked streams,
stdin half-close, exit codes and error messages."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

from shoal.cli import main

from .conftest import run_cli
from .fakedaemon import FakeDaemon, frame


def test_run_attaches_and_registers_the_wait_before_starting(daemon: FakeDaemon, capsysbinary) -> None:
    daemon.next_output = [(1, b"hello\n"), (2, b"warning\n"), (1, b"bye\n")]
    daemon.next_exit_code = 3
    assert main(["run", "--name", "web", "busybox", "sh", "-c", "echo hello"]) == 3
    captured = capsysbinary.readouterr()
    assert captured.out == b"hello\nbye\n"
    assert captured.err == b"warning\n"
    cid = next(iter(daemon.containers))
    assert daemon.calls() == ["POST /containers/create", f"POST /containers/{cid}/attach",
                              f"POST /containers/{cid}/wait", f"POST /containers/{cid}/start"]  # fmt: skip
    create, attach, wait, _ = daemon.requests
    assert create.version == "1.50"
    assert create.query == {"name": "web"}
    assert create.json()["Cmd"] == ["sh", "-c", "echo hello"]
    assert attach.headers["upgrade"] == "tcp" and attach.headers["connection"].lower() == "upgrade"
    assert attach.query == {"stream": "1", "stdin": "0", "stdout": "1", "stderr": "1"}
    assert wait.query == {"condition": "next-exit"}


def test_run_rm_waits_for_removal(daemon: FakeDaemon, capsysbinary) -> None:
    assert main(["run", "--rm", "busybox", "true"]) == 0
    assert daemon.find("POST", r"/containers/\w+/wait")[0].query == {"condition": "removed"}
    assert daemon.requests[0].json()["HostConfig"]["AutoRemove"] is True


def test_run_detached_prints_the_id(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-d", "busybox", "sleep", "1"]) == 0
    cid = next(iter(daemon.containers))
    assert capsys.readouterr().out == f"{cid}\n"
    assert daemon.calls() == ["POST /containers/create", f"POST /containers/{cid}/start"]


def test_run_with_tty_gets_a_raw_stream(daemon: FakeDaemon, capsysbinary) -> None:
    # \x01 would start a frame header if the client demultiplexed a TTY stream.
    daemon.next_output = [(1, b"\x01\x00\x00\x00raw\r\n")]
    assert main(["run", "-t", "busybox"]) == 0
    assert capsysbinary.readouterr().out == b"\x01\x00\x00\x00raw\r\n"
    assert daemon.requests[0].json()["Tty"] is True


def test_run_missing_image_is_pulled_first(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "nosuch", "true"]) == 125
    assert capsys.readouterr().err == (
        "Unable to find image 'nosuch:latest' locally\n"
        "Error response from daemon: pull access denied for nosuch, repository does not exist or may require 'docker login'\n"
    )
    assert daemon.calls() == ["POST /containers/create", "POST /images/create"]


@pytest.mark.parametrize(
    ("message", "status"),
    [('failed to create task: exec: "nope": executable file not found in $PATH', 127),
     ("exec /etc/passwd: permission denied", 126), ("cgroup setup failed", 125)],
)  # fmt: skip
def test_run_start_failure_exit_codes(daemon: FakeDaemon, capsys, message: str, status: int) -> None:
    daemon.start_error = (400, message)
    assert main(["run", "--rm", "busybox", "nope"]) == status
    assert capsys.readouterr().err == f"Error response from daemon: {message}\n"
    cid = next(iter(daemon.containers))
    assert daemon.calls()[-1] == f"DELETE /containers/{cid}"  # --rm: nothing left behind


def test_bad_memory_string_sends_nothing(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-m", "10XB", "busybox"]) == 125
    assert capsys.readouterr().err == (
        """invalid argument "10XB" for "-m, --memory" flag: invalid size: '10XB'\nSee 'shoal run --help'.\n"""
    )
    assert daemon.requests == []


def test_unknown_flag_exits_125(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--bogus", "busybox"])
    assert info.value.code == 125
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_missing_socket(tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SHOAL_HOST", "unix:///elsewhere.sock")  # restored after main() sets it from -H
    path = tmp_path / "none.sock"
    assert main(["-H", f"unix://{path}", "ps"]) == 1
    assert capsys.readouterr().err == f"cannot connect to shoald at unix://{path}: is it running?\n"
    assert main(["--host", f"unix://{path}", "run", "busybox"]) == 125


def test_create_then_start_attached(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.next_output = [(1, b"out\n")]
    daemon.next_exit_code = 4
    assert main(["create", "--name", "job", "busybox", "echo", "out"]) == 0
    cid = capsys.readouterr().out.strip()
    assert cid in daemon.containers

    @daemon.route("GET", r"/containers/\w+/json")
    def inspect(ex) -> None:
        ex.send_json(200, {"Id": cid, "Config": {"Tty": False, "OpenStdin": False}})

    assert main(["start", "-a", "job"]) == 4
    assert capsys.readouterr().out == "out\n"
    assert daemon.calls()[1:] == ["GET /containers/job/json", f"POST /containers/{cid}/attach",
                                  f"POST /containers/{cid}/wait", f"POST /containers/{cid}/start"]  # fmt: skip


def test_start_detached_echoes_names(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    main(["create", "--name", "a", "busybox"])
    capsys.readouterr()
    assert main(["start", "a", "ghost"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "a\n"
    assert captured.err == "Error response from daemon: No such container\n"


def test_interactive_stdin_is_forwarded_then_half_closed(daemon: FakeDaemon) -> None:
    # The fake echoes stdin until it sees the half-close, then prints more: both must arrive.
    daemon.next_output = [(2, b"after eof\n")]
    result = run_cli("run", "-i", "busybox", "cat", input=b"line one\nline two\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"line one\nline two\n"
    assert result.stderr == b"after eof\n"
    attach = daemon.find("POST", r"/containers/\w+/attach")[0]
    assert attach.query["stdin"] == "1"
    body = daemon.requests[0].json()
    assert (body["OpenStdin"], body["AttachStdin"], body["StdinOnce"]) == (True, True, True)


def test_exit_code_reaches_the_shell(daemon: FakeDaemon) -> None:
    daemon.next_exit_code = 42
    assert run_cli("run", "busybox", "false").returncode == 42


def test_run_it_drives_a_raw_terminal(daemon: FakeDaemon) -> None:
    master, slave = pty.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        before = termios.tcgetattr(slave)
        proc = subprocess.Popen([sys.executable, "-m", "shoal.cli", "run", "-it", "busybox", "sh"],
                                stdin=slave, stdout=slave, stderr=slave)  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while termios.tcgetattr(slave)[3] & termios.ECHO:  # wait for raw mode
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.005)
            os.write(master, b"hi\x04")
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        output = b""
        while select.select([master], [], [], 0.2)[0] and (chunk := os.read(master, 4096)):
            output += chunk
        assert output == b"hi"  # no local echo: the terminal was raw
        assert termios.tcgetattr(slave) == before  # and is restored
    finally:
        os.close(master)
        os.close(slave)
    body = daemon.requests[0].json()
    assert body["Tty"] and body["OpenStdin"] and body["HostConfig"]["ConsoleSize"] == [30, 100]
    resize = daemon.find("POST", r"/containers/\w+/resize")
    assert [(r.query["h"], r.query["w"]) for r in resize] == [("30", "100")]
    start = daemon.calls().index(next(c for c in daemon.calls() if c.endswith("/start")))
    assert daemon.calls().index(next(c for c in daemon.calls() if c.endswith("/resize"))) > start


def test_signals_are_forwarded_to_the_container(daemon: FakeDaemon) -> None:
    daemon.next_output = [(1, b"ready\n")]
    daemon.next_runs_until_killed = True
    proc = subprocess.Popen([sys.executable, "-m", "shoal.cli", "run", "busybox", "sleep", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    kill = daemon.find("POST", r"/containers/\w+/kill")
    assert [r.query for r in kill] == [{"signal": "SIGTERM"}]


@pytest.mark.parametrize("framing", ["until-close", "chunked"])
def test_attach_answered_without_an_upgrade(daemon: FakeDaemon, capsysbinary, framing: str) -> None:
    """Some servers answer the hijack with a plain 200 and stream the output as the body."""

    @daemon.route("POST", r"/containers/\w+/attach")
    def attach(ex) -> None:
        container = daemon.container(ex.request.path.split("/")[2])
        data = frame(1, b"plain ") + frame(2, b"answer\n")
        if framing == "chunked":
            ex.start_chunked("application/vnd.docker.multiplexed-stream")
            container.started.wait(10)
            ex.chunk(data[:5])
            ex.chunk(data[5:])
            ex.end_chunks()
        else:
            ex.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n\r\n")
            ex.wfile.flush()
            container.started.wait(10)
            ex.wfile.write(data)
            ex.wfile.flush()
        container.exited.set()

    assert main(["run", "busybox"]) == 0
    captured = capsysbinary.readouterr()
    assert (captured.out, captured.err) == (b"plain ", b"answer\n")
