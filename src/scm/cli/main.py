"""Entry point of the ``scm`` command: global options, subcommands, error reporting."""

from __future__ import annotations

import gc
import importlib
import os
import sys
from typing import TYPE_CHECKING

import click

from scm import __version__
from scm.cli.context import CliContext
from scm.cli.paths import PathParam
from scm.errors import ScmError, UnavailableError
from scm.files import storage_error
from scm.settings_sources import LOG_LEVELS

if TYPE_CHECKING:  # annotations only: `scm inspect` never loads pathlib
    from pathlib import Path

HELP_ONLY = "scm.help_only"
# Commands that neither log nor read settings: they skip loading and configuring the
# logging package and building Settings (a fifth of `scm inspect`'s own start-up), yet a
# broken settings source fails them as it fails every command.
# tests/integration/cli/test_startup_imports.py checks that running them loads neither
# `logging` nor `scm.config`; a command that logs or reads settings leaves this set.
READS_NO_SETTINGS = frozenset({"inspect"})
EX_USAGE = 64
EX_SOFTWARE = 70

# Subcommand name -> "module:attribute". Modules load only when their command runs, so
# `scm inspect` stays fast and works where a domain's heavier dependencies are absent
# (e.g. inside a guest image that carries only what inspect and attest need).
COMMANDS = {
    "attest": "scm.cli.attest:attest_group",
    "ca": "scm.cli.ca:ca_group",
    "console": "scm.cli.console:console_command",
    "image": "scm.cli.image:image_group",
    "inspect": "scm.cli.inspect:inspect_command",
    "keys": "scm.cli.keys:keys_group",
    "kube": "scm.cli.kube:kube_group",
    "openstack": "scm.cli.openstack:openstack_group",
    "sds": "scm.cli.sds:sds_group",
    "up": "scm.cli.up:up_command",
}

SHORT_HELP = {
    "attest": "DCAP attestation: SGX and TDX quotes.",
    "ca": "The local CA: issues workload certificates...",
    "console": "Serve the read-only web console: host,...",
    "image": "Confidential guest images for TDX and SGX.",
    "inspect": "Report what this host can do for SGX and...",
    "keys": "Key pairs kept inside the PKCS#11 token...",
    "kube": "Kubernetes: device plugin, node agent,...",
    "openstack": "OpenStack: nova compute host checks and...",
    "sds": "Envoy Secret Discovery Service.",
    "up": "Run the SDS server with the local CA and a...",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use.

    ``scm --help`` lists them without importing any (a domain's imports cost hundreds of
    milliseconds): their one-line help is :data:`SHORT_HELP`, which a test checks against
    what click would print from each command.
    """

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return super().get_command(ctx, name)
        module_name, attribute = COMMANDS[name].split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UnavailableError(
                f"'scm {name}' is not available in this installation: {exc}"
            ) from None
        command: click.Command = getattr(module, attribute)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        # click resolves the subcommand before running this group's callback: note there
        # whether the words only ask for help (`scm keys list -h`, a bare `scm keys`), so the
        # callback skips reading settings (a broken settings file must not hide help).
        bare_group = _names_a_bare_group(ctx, command, rest)
        ctx.meta[HELP_ONLY] = ctx.resilient_parsing or bare_group or _asks_for_help(rest)
        return name, command, rest


def _names_a_bare_group(ctx: click.Context, command: click.Command | None, rest: list[str]) -> bool:
    """True when the words end at a group (`scm keys`, `scm attest collateral`)."""
    while isinstance(command, click.Group):
        if not rest:
            return True
        if rest[0].startswith("-"):
            return False
        command, rest = command.get_command(ctx, rest[0]), rest[1:]
    return False


def _asks_for_help(args: list[str]) -> bool:
    words = args[: args.index("--")] if "--" in args else args
    return any(word in ("-h", "--help") for word in words)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Log at debug level and show tracebacks.")
@click.option(
    "--config",
    "config_file",
    type=PathParam(dir_okay=False),
    help="TOML settings file (default: $SCM_CONFIG).",
)
@click.option(
    "--state-dir",
    type=PathParam(file_okay=False),
    help="Directory for scm's state (default: $SCM_STATE_DIR, /var/lib/scm for root).",
)
@click.option("--log-level", type=click.Choice(LOG_LEVELS), help="Override the log level.")
@click.version_option(__version__, prog_name="scm")
@click.pass_context
def cli(
    ctx: click.Context,
    debug: bool,
    config_file: Path | None,
    state_dir: Path | None,
    log_level: str | None,
) -> None:
    """SCM: Intel SGX and TDX confidential computing for clouds."""
    obj = CliContext(debug=debug, config_file=config_file, state_dir=state_dir, log_level=log_level)
    ctx.obj = obj
    if ctx.meta.get(HELP_ONLY):
        return  # help and completion read no settings file
    if ctx.invoked_subcommand in READS_NO_SETTINGS:
        obj.check_settings()
        return
    from scm.log import setup_logging

    setup_logging(obj.settings.log_level)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; expected errors become one line on stderr and a non-zero exit.

    ``argv`` None means this process is the ``scm`` command itself and ends with this call.
    """
    try:
        _run(sys.argv[1:] if argv is None else argv)
    finally:
        if argv is None:
            # The process is about to exit: the interpreter's final garbage collection would
            # walk every object click and the domains made (10-15 ms here, more than
            # `scm inspect`'s own work). Frozen objects are skipped. Objects outside reference
            # cycles are still freed and finalized as before; for cyclic garbage Python never
            # promised finalizers at exit, and scm closes what it opens explicitly.
            gc.freeze()


def _run(args: list[str]) -> None:
    debug = "--debug" in args or os.environ.get("SCM_DEBUG") == "1"
    try:
        code = cli.main(args=args, prog_name="scm", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        # A bare `scm` or `scm keys` asks what there is: its help, exactly as --help prints
        # it, and 0 like --help (README, "Command-line convention"). click would exit 2.
        click.echo(exc.format_message())
        sys.exit(0)
    except click.UsageError as exc:
        # One line like every other error, with where to look instead of click's usage block.
        where = exc.ctx.command_path if exc.ctx else "scm"
        click.echo(f"scm: error: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(EX_USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except ScmError as exc:
        if debug:
            raise
        click.echo(f"scm: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug:
            raise
        # A full or read-only disk is the operator's to fix, not a bug: say what to do.
        storage = storage_error(exc) if isinstance(exc, OSError) else None
        if storage is not None:
            click.echo(f"scm: error: {storage}", err=True)
            sys.exit(storage.exit_code)
        click.echo(
            f"scm: internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
            err=True,
        )
        sys.exit(EX_SOFTWARE)
    sys.exit(code if isinstance(code, int) else 0)
