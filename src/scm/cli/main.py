"""Entry point of the ``scm`` command: global options, subcommands, error reporting."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import click

from scm import __version__
from scm.cli.context import CliContext
from scm.config import LOG_LEVELS
from scm.errors import ScmError, UnavailableError
from scm.log import setup_logging

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


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

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


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Log at debug level and show tracebacks.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TOML settings file (default: $SCM_CONFIG).",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
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
    setup_logging(obj.settings.log_level)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; expected errors become one line on stderr and a non-zero exit."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("SCM_DEBUG") == "1"
    try:
        code = cli.main(args=args, prog_name="scm", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.format_message())  # a bare `scm` or `scm keys`: the help is the answer
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        # One line like every other error, with where to look instead of click's usage block.
        where = exc.ctx.command_path if exc.ctx else "scm"
        click.echo(f"scm: error: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(exc.exit_code)
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
        click.echo(
            f"scm: internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
            err=True,
        )
        sys.exit(EX_SOFTWARE)
    sys.exit(code if isinstance(code, int) else 0)
