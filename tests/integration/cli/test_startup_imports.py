"""What `scm` loads to start: help and `scm inspect` never load a domain's heavy stack.

Start-up time is mostly imports (bench/startup.py measures it). These tests pin the
behaviour that keeps it short: `scm --help`, every command's `--help` and `scm inspect`
run in a fresh interpreter without loading the PKCS#11, X.509, gRPC, HTTP or template
libraries that only the commands doing that work need.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import click
import pytest

from scm.cli import sds as sds_cli
from scm.cli.keys import KEY_TYPES
from scm.cli.main import cli

HOST = Path(__file__).parents[2] / "fixtures" / "hosts" / "tdx-host" / "root"

# Loaded only by commands that sign, serve, fetch or render: never by help or inspect.
HEAVY = [
    "aiohttp", "asyncio", "cryptography", "google.protobuf", "grpc", "jinja2", "libvirt",
    "lightkube", "lxml", "pkcs11", "prometheus_client", "ssl", "yaml",
]  # fmt: skip
# Also not needed to inspect a host and print the text report: inspect never logs, reads
# no settings (it only checks them) and works on text paths and NamedTuple records.
NOT_FOR_INSPECT = [
    "dataclasses", "json", "logging", "pathlib", "scm.config", "subprocess", "tempfile",
    "tomllib", "xml.etree.ElementTree",
]  # fmt: skip

# Runs each argv through main() in one fresh interpreter and reports, per argv, its exit
# status and which of the watched modules were loaded once it had run. It speaks Python
# literals, not JSON: importing json itself would hide a command that loads it.
PROBE = """
import ast, sys
from scm.cli.main import main
runs, watched, report = ast.literal_eval(sys.argv[1]), ast.literal_eval(sys.argv[2]), []
for argv in runs:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code
    report.append([argv, code, [m for m in watched if m in sys.modules]])
sys.stderr.write("\\nPROBE " + repr(report) + "\\n")
"""


def probe(runs: list[list[str]], watched: list[str]) -> list[tuple[list[str], int, list[str]]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, repr(runs), repr(watched)],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    line = done.stderr.rsplit("\nPROBE ", 1)[1]
    return [(argv, code, loaded) for argv, code, loaded in ast.literal_eval(line)]


def command_paths() -> list[list[str]]:
    """Every group and command under `scm`, as the words that name it."""
    paths: list[list[str]] = []

    def walk(command: click.Command, path: list[str], ctx: click.Context) -> None:
        paths.append(path)
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, [*path, name], click.Context(sub, parent=ctx, info_name=name))

    walk(cli, [], click.Context(cli, info_name="scm"))
    return paths


def test_inspect_loads_no_heavy_module() -> None:
    runs = [
        ["inspect"],
        ["inspect", "--root", str(HOST)],
        ["--debug", "inspect", "--root", str(HOST), "--format", "nfd"],
    ]
    for argv, code, loaded in probe(runs, HEAVY + NOT_FOR_INSPECT):
        assert (code, loaded) == (0, []), argv


def test_help_of_every_command_loads_no_heavy_module() -> None:
    paths = command_paths()
    assert len(paths) > 30  # the walk found the whole tree
    runs = [[*path, "--help"] for path in paths] + [["keys"], []]
    for argv, code, loaded in probe(runs, HEAVY):
        assert (code, loaded) == (0, []), argv


def test_json_output_still_works_after_deferring_json() -> None:
    [(argv, code, loaded)] = probe([["inspect", "--root", str(HOST), "--format", "json"]], HEAVY)
    assert (code, loaded) == (0, []), argv


@pytest.mark.parametrize(
    ("written_out", "domain"),
    [
        (KEY_TYPES, "scm.keys.model:KeyType"),
        (sds_cli.KEY_MODES, "scm.sds.leafkeys:KEY_MODES"),
        (sds_cli.PIN_SOURCES, "scm.sds.keyprovider:PIN_SOURCES"),
    ],
)
def test_choices_written_out_for_help_match_the_domain(written_out, domain) -> None:
    import importlib

    module, name = domain.split(":")
    value = getattr(importlib.import_module(module), name)
    expected = [item.value for item in value] if isinstance(value, type) else list(value)
    assert list(written_out) == expected
