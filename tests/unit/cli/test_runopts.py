"""``run``/``create`` flag syntaxes and the create body they produce."""

from __future__ import annotations

import pytest

from shoal.cli.common import UsageError
from shoal.cli.runopts import (
    container_parser,
    create_body,
    parse_env,
    parse_env_file,
    parse_labels,
    parse_mount,
    parse_port,
    parse_restart,
    parse_tmpfs,
    parse_volume,
)


def test_env_takes_bare_keys_from_the_local_environment() -> None:
    environ = {"HOME": "/root"}
    assert parse_env(["A=1", "B=", "HOME", "MISSING"], environ) == ["A=1", "B=", "HOME=/root"]
    with pytest.raises(ValueError, match="invalid environment variable: =x"):
        parse_env(["=x"], environ)


def test_env_file() -> None:
    text = "# comment\n\nA=1\n  B=two words\nUSER\n"
    assert parse_env_file(text, {"USER": "me"}) == ["A=1", "B=two words", "USER=me"]
    with pytest.raises(ValueError, match="variable 'BAD KEY' contains whitespaces"):
        parse_env_file("BAD KEY=1\n", {})


def test_labels() -> None:
    assert parse_labels(["a=1", "b", "c=x=y"]) == {"a": "1", "b": "", "c": "x=y"}


@pytest.mark.parametrize(
    ("spec", "result"),
    [("/data", (None, "/data")), ("/host:/ctr", ("/host:/ctr", None)), ("/host:/ctr:ro", ("/host:/ctr:ro", None)),
     ("named:/ctr", ("named:/ctr", None)), ("./rel:/ctr", ("/work/rel:/ctr", None)),
     ("/h:/c:ro,Z", ("/h:/c:ro,Z", None))],
)  # fmt: skip
def test_volume(spec: str, result: tuple) -> None:
    assert parse_volume(spec, "/work") == result


@pytest.mark.parametrize("spec", ["relative", "/a:relative", "/a:/b:c:d", ":/b"])
def test_volume_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError, match=f"invalid volume specification: '{spec}'"):
        parse_volume(spec, "/")


def test_volume_rejects_bad_modes() -> None:
    with pytest.raises(ValueError, match="invalid mode: bogus"):
        parse_volume("/a:/b:bogus", "/")
    with pytest.raises(ValueError, match="invalid mode: ro,rw"):
        parse_volume("/a:/b:ro,rw", "/")


def test_mount() -> None:
    assert parse_mount("type=bind,source=/a,target=/b,readonly") == {
        "Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": True}  # fmt: skip
    assert parse_mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1777") == {
        "Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 64 << 20, "Mode": 0o1777}}  # fmt: skip
    assert parse_mount("src=vol,target=/v") == {"Type": "volume", "Source": "vol", "Target": "/v"}
    for spec, error in [
        ("type=bind,target=/b", "source is required"),
        ("type=x,target=/b", "unsupported mount type"),
        ("source=/a", "target is required"),
        ("type=bind,bogus=1,target=/b", "unexpected key"),
    ]:
        with pytest.raises(ValueError, match=error):
            parse_mount(spec)


def test_tmpfs() -> None:
    assert parse_tmpfs("/run") == ("/run", "")
    assert parse_tmpfs("/run:rw,size=64m") == ("/run", "rw,size=64m")
    with pytest.raises(ValueError, match="not absolute"):
        parse_tmpfs("run")


def test_restart() -> None:
    assert parse_restart("no") == {"Name": "no", "MaximumRetryCount": 0}
    assert parse_restart("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert parse_restart("unless-stopped")["Name"] == "unless-stopped"
    with pytest.raises(ValueError, match="maximum retry count cannot be used with restart policy 'always'"):
        parse_restart("always:3")
    with pytest.raises(ValueError, match="unknown policy 'sometimes'"):
        parse_restart("sometimes")


@pytest.mark.parametrize(
    ("spec", "exposed", "bindings"),
    [("80", ["80/tcp"], {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
     ("8080:80", ["80/tcp"], {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}),
     ("127.0.0.1:8080:80/udp", ["80/udp"], {"80/udp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}),
     ("127.0.0.1::80", ["80/tcp"], {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}),
     ("[::1]:8080:80", ["80/tcp"], {"80/tcp": [{"HostIp": "::1", "HostPort": "8080"}]}),
     ("8000-8001:80-81", ["80/tcp", "81/tcp"],
      {"80/tcp": [{"HostIp": "", "HostPort": "8000"}], "81/tcp": [{"HostIp": "", "HostPort": "8001"}]}),
     ("8000-8010:80", ["80/tcp"], {"80/tcp": [{"HostIp": "", "HostPort": "8000-8010"}]})],
)  # fmt: skip
def test_port(spec: str, exposed: list[str], bindings: dict) -> None:
    got_exposed, got_bindings = parse_port(spec)
    assert list(got_exposed) == exposed
    assert got_bindings == bindings


@pytest.mark.parametrize(
    ("spec", "error"),
    [("80/icmp", "invalid proto: icmp"), ("x", "invalid containerPort: x"), ("99999", "invalid containerPort"),
     ("a:80", "invalid hostPort: a"), ("8000-8002:80-81", "invalid ranges"), ("1:2:3:4", "invalid port format")],
)  # fmt: skip
def test_port_errors(spec: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_port(spec)


def _body(*argv: str, detach: bool = False, rm: bool = False) -> dict:
    args = container_parser("shoal run", "test").parse_args(list(argv))
    return create_body(args, {"TERM": "xterm"}, "/work", detach=detach, auto_remove=rm)


def test_create_body_from_docker_flags() -> None:
    body = _body("-i", "-e", "A=1", "-e", "TERM", "-v", "/h:/c:ro", "-v", "/anon", "-w", "/srv", "-u", "1000:1000",
                 "--name", "ignored-here", "-m", "512m", "--memory-swap", "1g", "--cpus", "1.5", "--cpu-shares", "512",
                 "--cpuset-cpus", "0-1", "--pids-limit", "64", "--restart", "on-failure:2", "--init",
                 "--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "--read-only", "-h", "box", "--entrypoint", "/bin/sh",
                 "-l", "tier=web", "--tmpfs", "/run:size=1m", "--network", "none", "-p", "8080:80",
                 "--stop-signal", "SIGINT", "--stop-timeout", "3", "busybox", "-c", "echo -e hi")  # fmt: skip
    host = body["HostConfig"]
    assert body["Image"] == "busybox"
    assert body["Cmd"] == ["-c", "echo -e hi"]  # flags after the image belong to the command
    assert body["Entrypoint"] == ["/bin/sh"]
    assert body["Env"] == ["A=1", "TERM=xterm"]
    assert body["Volumes"] == {"/anon": {}}
    assert (body["WorkingDir"], body["User"], body["Hostname"]) == ("/srv", "1000:1000", "box")
    assert body["Labels"] == {"tier": "web"}
    assert (body["StopSignal"], body["StopTimeout"]) == ("SIGINT", 3)
    assert body["ExposedPorts"] == {"80/tcp": {}}
    assert (body["OpenStdin"], body["AttachStdin"], body["StdinOnce"], body["Tty"]) == (True, True, True, False)
    assert host["Binds"] == ["/h:/c:ro"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"]) == (512 << 20, 1 << 30, 1_500_000_000)
    assert (host["CpuShares"], host["CpusetCpus"], host["PidsLimit"]) == (512, "0-1", 64)
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert (host["Init"], host["ReadonlyRootfs"], host["Privileged"]) == (True, True, False)
    assert (host["CapAdd"], host["CapDrop"]) == (["NET_ADMIN"], ["ALL"])
    assert host["Tmpfs"] == {"/run": "size=1m"}
    assert host["NetworkMode"] == "none"
    assert host["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}


def test_create_body_defaults_leave_the_image_in_charge() -> None:
    body = _body("busybox", detach=True)
    assert body["Cmd"] is None and "Entrypoint" not in body and "WorkingDir" not in body
    assert (body["AttachStdout"], body["AttachStderr"], body["AttachStdin"]) == (False, False, False)
    assert body["HostConfig"] == {"RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": False,
                                  "Privileged": False, "ReadonlyRootfs": False}  # fmt: skip


def test_empty_entrypoint_resets_the_images() -> None:
    assert _body("--entrypoint", "", "busybox")["Entrypoint"] == [""]


def test_combined_short_flags() -> None:
    body = _body("-it", "busybox", "sh")
    assert body["Tty"] and body["OpenStdin"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [(("-m", "10XB"), '''invalid argument "10XB" for "-m, --memory" flag: invalid size: '10XB\''''),
     (("--cpus", "lots"), 'invalid argument "lots" for "--cpus" flag: failed to parse lots as a rational number'),
     (("-e", "=x"), 'invalid argument "=x" for "-e, --env" flag: invalid environment variable: =x'),
     (("-v", "rel"), '''invalid argument "rel" for "-v, --volume" flag: invalid volume specification: 'rel\''''),
     (("-p", "80/icmp"), 'invalid argument "80/icmp" for "-p, --publish" flag: invalid proto: icmp'),
     (("--restart", "x"),
      """invalid argument "x" for "--restart" flag: invalid restart policy format: unknown policy 'x'""")],
)  # fmt: skip
def test_bad_flag_values_use_dockers_wording(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError) as info:
        _body(*argv, "busybox")
    assert str(info.value) == message


def test_restart_conflicts_with_rm() -> None:
    with pytest.raises(UsageError, match="Conflicting options"):
        _body("--restart", "always", "busybox", rm=True)
    assert _body("--restart", "no", "busybox", rm=True)["HostConfig"]["AutoRemove"] is True


def test_env_file_missing(tmp_path) -> None:
    with pytest.raises(UsageError, match="no such file or directory"):
        _body("--env-file", str(tmp_path / "nope"), "busybox")
    (tmp_path / "env").write_text("X=1\n")
    assert _body("--env-file", str(tmp_path / "env"), "-e", "Y=2", "busybox")["Env"] == ["X=1", "Y=2"]


def test_network_flags_become_endpoint_settings_and_dns() -> None:
    from shoal.cli.common import Parser
    from shoal.cli.runopts import add_container_flags, create_body

    parser = Parser("shoal run", "test")
    add_container_flags(parser)
    args = parser.parse_args(["--network", "appnet", "--ip", "10.9.0.5", "--network-alias", "db", "--dns", "10.9.0.1",
                              "--add-host", "box:10.9.0.9", "img"])  # fmt: skip
    body = create_body(args, {}, "/", detach=True)
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"appnet": {"IPAMConfig": {"IPv4Address": "10.9.0.5"}, "Aliases": ["db"]}}}
    assert body["HostConfig"]["Dns"] == ["10.9.0.1"] and body["HostConfig"]["ExtraHosts"] == ["box:10.9.0.9"]


def test_ip_on_the_default_network_is_refused() -> None:
    import pytest

    from shoal.cli.common import Parser, UsageError
    from shoal.cli.runopts import add_container_flags, create_body

    parser = Parser("shoal run", "test")
    add_container_flags(parser)
    with pytest.raises(UsageError, match="only on user defined networks"):
        create_body(parser.parse_args(["--ip", "10.0.0.2", "img"]), {}, "/", detach=True)
    with pytest.raises(UsageError, match='bad format for add-host: "nocolon"'):
        create_body(parser.parse_args(["--add-host", "nocolon", "img"]), {}, "/", detach=True)


def test_publish_all_flag() -> None:
    from shoal.cli.common import Parser
    from shoal.cli.runopts import add_container_flags, create_body

    parser = Parser("shoal run", "test")
    add_container_flags(parser)
    body = create_body(parser.parse_args(["-P", "--expose", "80", "img"]), {}, "/", detach=True)
    assert body["HostConfig"]["PublishAllPorts"] is True and body["ExposedPorts"] == {"80/tcp": {}}
