"""The CLI convention (README, "Command-line convention"), checked over every command.

The command tree is walked from the real ``scm`` group, so a new command is checked as soon
as it exists, and must be placed in exactly one of the kinds below.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from scm.cli.main import SHORT_HELP, cli, main

SCM = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"
FIXTURES = Path(__file__).parents[2] / "fixtures"
QUOTE = FIXTURES / "attestation/quotes/tdx_v4_uptodate.quote.bin"
COLLATERAL = FIXTURES / "attestation/collateral/tdx_v4_uptodate.collateral.json"
HOST = FIXTURES / "hosts/tdx-host/root"

# Commands that print data: each takes --format with text (the default) and json.
DATA = {
    "attest show", "attest verify", "ca init", "ca show", "image check", "image properties",
    "inspect", "keys delete", "keys generate", "keys import", "keys list", "keys prune",
    "openstack check-host", "openstack flavor-spec",
}  # fmt: skip
# Commands whose output is a file format of its own (PEM, a binary quote, collateral JSON),
# written to --output or standard output.
ARTIFACT = {"attest collateral fetch", "attest quote", "ca csr", "ca issue", "image build"}
# Long-running servers: they print a banner and logs, no data.
SERVER = {"console", "kube device-plugin", "kube node-agent", "kube webhook", "sds serve", "up"}
# Options that would name a listener's address in two halves.
SPLIT_LISTENER_OPTIONS = {"--host", "--bind", "--address"}


def leaves() -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}

    def walk(command: click.Command, path: list[str], ctx: click.Context) -> None:
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, [*path, name], click.Context(sub, parent=ctx, info_name=name))
        else:
            found[" ".join(path)] = command

    walk(cli, [], click.Context(cli, info_name="scm"))
    return found


COMMANDS = leaves()


def groups() -> list[str]:
    found = [""]

    def walk(group: click.Group, path: list[str], ctx: click.Context) -> None:
        for name in group.list_commands(ctx):
            sub = group.get_command(ctx, name)
            if isinstance(sub, click.Group):
                found.append(" ".join([*path, name]))
                walk(sub, [*path, name], click.Context(sub, parent=ctx, info_name=name))

    walk(cli, [], click.Context(cli, info_name="scm"))
    return found


GROUPS = groups()
# Commands that read a host's (or this TEE's) files below --root DIR.
ROOTED = sorted(
    name
    for name, command in COMMANDS.items()
    if any(isinstance(p, click.Option) and "--root" in p.opts for p in command.params)
)


def run(argv: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), out, err


def test_every_command_has_one_kind() -> None:
    kinds = [DATA, ARTIFACT, SERVER]
    for name in COMMANDS:
        assert sum(name in kind for kind in kinds) == 1, f"classify '{name}' in this test"
    assert set().union(*kinds) == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_exits_0_on_stdout_without_reading_settings(name, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SCM_CONFIG", "/nonexistent/scm.toml")
    code, out, err = run([*name.split(), "--help"], monkeypatch, capsys)
    assert (code, err) == (0, "")
    assert out.startswith("Usage: scm " + name)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_usage_errors_exit_64_with_one_line_on_stderr(name, monkeypatch, capsys) -> None:
    code, out, err = run([*name.split(), "--no-such-option"], monkeypatch, capsys)
    assert code == 64
    assert out == ""
    assert err.startswith("scm: error: ") and len(err.splitlines()) == 1
    assert f"'scm {name} --help'" in err


@pytest.mark.parametrize("name", GROUPS, ids=lambda name: name or "scm")
def test_a_bare_group_prints_its_help_and_exits_0(name, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SCM_CONFIG", "/nonexistent/scm.toml")
    words = name.split()
    code, out, err = run(words, monkeypatch, capsys)
    assert (code, err) == (0, "")
    assert out == run([*words, "--help"], monkeypatch, capsys)[1]


def test_rooted_commands_are_found() -> None:
    expected = {"inspect", "openstack check-host", "kube device-plugin", "kube node-agent"}
    assert expected | {"attest quote", "ca csr", "console"} == set(ROOTED)


@pytest.mark.parametrize("name", ROOTED)
@pytest.mark.parametrize("kind", ["missing", "file"])
def test_root_is_checked_once_with_one_message(name, kind, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("SCM_CONFIG", raising=False)
    monkeypatch.setenv("SCM_STATE_DIR", str(tmp_path / "state"))
    root = tmp_path / "root"
    if kind == "file":
        root.write_text("not a directory\n")
    code, out, err = run([*name.split(), "--root", str(root)], monkeypatch, capsys)
    problem = "does not exist" if kind == "missing" else "is not a directory"
    assert (code, out) == (66, "")
    assert err == f"scm: error: host root {root} {problem}\n"


@pytest.mark.parametrize("name", sorted(DATA))
def test_data_commands_take_format_text_or_json(name) -> None:
    options = {o.name: o for o in COMMANDS[name].params if isinstance(o, click.Option)}
    assert "output_format" in options, f"scm {name} has no --format"
    fmt = options["output_format"]
    assert fmt.opts == ["--format"]
    assert isinstance(fmt.type, click.Choice)
    assert {"text", "json"} <= set(fmt.type.choices)
    assert fmt.default == "text"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_listeners_are_one_host_port_option(name) -> None:
    visible = {
        opt
        for param in COMMANDS[name].params
        if isinstance(param, click.Option) and not param.hidden
        for opt in param.opts
    }
    assert not visible & SPLIT_LISTENER_OPTIONS, f"scm {name}: use --listen HOST:PORT"


def test_short_help_of_scm_help_is_each_command_s_own() -> None:
    ctx = click.Context(cli, info_name="scm")
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        assert SHORT_HELP[name] == command.get_short_help_str(limit=45), name


def scm(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SCM_CONFIG"}
    env["SCM_STATE_DIR"] = str(tmp_path / "state")
    return subprocess.run(
        [SCM, *argv],
        capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip


JSON_RUNS = {
    "inspect": ["inspect", "--root", str(HOST), "--format", "json"],
    "openstack check-host": ["openstack", "check-host", "--root", str(HOST), "--format", "json"],
    "openstack flavor-spec": ["openstack", "flavor-spec", "--sgx-epc", "64M", "--format", "json"],
    "image properties": ["image", "properties", "--tee", "sgx", "--format", "json"],
    "attest show": ["attest", "show", str(QUOTE), "--format", "json"],
    "attest verify": [
        "attest", "verify", str(QUOTE), "--collateral", str(COLLATERAL), "--at", "1735689600",
        "--format", "json",
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(JSON_RUNS))
def test_json_output_is_json_on_stdout_only(name, tmp_path) -> None:
    result = scm(tmp_path, *JSON_RUNS[name])
    assert result.returncode in (0, 1), result.stderr
    json.loads(result.stdout)
    assert result.stderr == ""


def test_the_same_data_has_the_same_json_keys(tmp_path) -> None:
    flavor = json.loads(scm(tmp_path, *JSON_RUNS["openstack flavor-spec"]).stdout)
    image = json.loads(scm(tmp_path, *JSON_RUNS["image properties"]).stdout)
    assert set(flavor) == set(image) == {"flavor_extra_specs", "image_properties"}


@pytest.mark.timeout(300)
def test_key_and_ca_commands_speak_json_and_say_no_keys(tmp_path) -> None:
    empty = scm(tmp_path, "keys", "list")
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.startswith("no keys in ")
    assert json.loads(scm(tmp_path, "keys", "list", "--format", "json").stdout) == []
    made = json.loads(scm(tmp_path, "keys", "generate", "k1", "--format", "json").stdout)
    assert (made["label"], made["type"], made["sensitive"]) == ("k1", "ec-p256", True)
    listed = json.loads(scm(tmp_path, "keys", "list", "--format", "json").stdout)
    assert [k["label"] for k in listed] == ["k1"] and set(listed[0]) == {*made, "state"}
    assert listed[0]["state"] == "user"  # a key the user made is never scm's to prune
    gone = json.loads(scm(tmp_path, "keys", "delete", "k1", "--format", "json").stdout)
    assert gone["label"] == "k1" and gone["deleted"] is True
    created = json.loads(scm(tmp_path, "ca", "init", "--format", "json").stdout)
    shown = json.loads(scm(tmp_path, "ca", "show", "--format", "json").stdout)
    assert shown["subject"] == created["subject"] and shown["key_label"] == created["key_label"]
    assert shown["chain_pem"].startswith("-----BEGIN CERTIFICATE-----")
    pem = scm(tmp_path, "ca", "show", "--format", "pem")
    assert pem.stdout == shown["chain_pem"] and pem.stderr == ""
    old = scm(tmp_path, "ca", "show", "--pem")
    assert old.stdout == pem.stdout and "--pem is deprecated" in old.stderr


def test_refused_checks_exit_1(tmp_path) -> None:
    no_tee = str(FIXTURES / "hosts/no-tee/root")
    ready = scm(tmp_path, "openstack", "check-host", "--root", no_tee, "--format", "json")
    assert json.loads(ready.stdout)["sgx_ready"] is False
    result = scm(tmp_path, "openstack", "check-host", "--root", no_tee, "--require", "sgx")
    assert result.returncode == 1
    assert result.stderr == "scm: error: this host is not ready for SGX guests\n"
    verified = scm(
        tmp_path, "attest", "verify", str(QUOTE), "--collateral", str(COLLATERAL), "--at", "0"
    )
    assert verified.returncode == 1, verified.stderr  # verified at 1970: not yet valid


def test_webhook_listen_and_its_deprecated_aliases(tmp_path, monkeypatch, capsys) -> None:
    tls = ["--tls-cert", str(tmp_path / "c"), "--tls-key", str(tmp_path / "k")]
    code, _, err = run(["kube", "webhook", *tls, "--listen", "nowhere"], monkeypatch, capsys)
    assert code == 64 and "is not HOST:PORT" in err
    both = ["--listen", "127.0.0.1:0", "--port", "1"]
    code, _, err = run(["kube", "webhook", *tls, *both], monkeypatch, capsys)
    assert code == 64 and "give only --listen" in err


def test_shell_completion_works_without_settings(tmp_path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k != "SCM_CONFIG"},
        "SCM_CONFIG": "/nonexistent/scm.toml",
        "_SCM_COMPLETE": "bash_complete",
        "COMP_WORDS": "scm keys l",
        "COMP_CWORD": "2",
    }
    result = subprocess.run([SCM], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["plain,list"]
    env["_SCM_COMPLETE"] = "bash_source"
    script = subprocess.run([SCM], capture_output=True, text=True, env=env, timeout=60)
    assert "complete -o nosort -F _scm_completion scm" in script.stdout
