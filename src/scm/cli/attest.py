"""``scm attest``: show, verify and generate DCAP quotes; fetch collateral for offline use."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from scm.cli.context import CliContext, pass_cli
from scm.cli.paths import PathParam
from scm.cli.roots import root_option
from scm.files import read_input, write_output

if TYPE_CHECKING:  # the attestation domain loads when a command runs, not for --help
    from scm.attestation import Verdict
    from scm.attestation.pccs import PccsClient
    from scm.attestation.tcb import MatchedLevel

FORMATS = click.Choice(["text", "json"])


@click.group("attest")
def attest_group() -> None:
    """DCAP attestation: SGX and TDX quotes."""


@attest_group.command("show")
@click.argument("quote_file", type=PathParam(dir_okay=False))
@click.option("--format", "output_format", type=FORMATS, default="text", show_default=True)
def show_command(quote_file: Path, output_format: str) -> None:
    """Print the fields of a quote (nothing is verified)."""
    from scm.attestation import parse_quote
    from scm.attestation.quote import MAX_QUOTE_BYTES
    from scm.attestation.verdict import quote_summary

    summary = quote_summary(parse_quote(read_input(quote_file, "quote file", MAX_QUOTE_BYTES)))
    if output_format == "json":
        click.echo(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            click.echo(f"{key}: {value}")


@attest_group.command("verify")
@click.argument("quote_file", type=PathParam(dir_okay=False))
@click.option(
    "--collateral",
    "collateral_file",
    type=PathParam(dir_okay=False),
    help="Collateral bundle (QuoteCollateralV3 JSON, as `scm attest collateral fetch` writes).",
)
@click.option(
    "--pccs-url", help="Fetch collateral from this PCCS or PCS (cached in the state dir)."
)
@click.option(
    "--at",
    "at",
    # Up to the end of year 9999, the last instant datetime and X.509 times can express.
    type=click.IntRange(0, 253402300799),
    help="Verify at this time (Unix seconds; default: now).",
)
@click.option(
    "--policy",
    "policy_file",
    type=PathParam(dir_okay=False),
    help="Appraisal policy (TOML); default: UpToDate or SWHardeningNeeded, no debug.",
)
@click.option("--format", "output_format", type=FORMATS, default="text", show_default=True)
@click.pass_context
def verify_command(
    ctx: click.Context,
    quote_file: Path,
    collateral_file: Path | None,
    pccs_url: str | None,
    at: int | None,
    policy_file: Path | None,
    output_format: str,
) -> None:
    """Verify a quote and appraise it; exit 0 only when the policy accepts it."""
    from scm.attestation import Collateral, parse_quote
    from scm.attestation.policy import DEFAULT_POLICY, Policy, appraise
    from scm.attestation.quote import MAX_QUOTE_BYTES

    raw = read_input(quote_file, "quote file", MAX_QUOTE_BYTES)
    if (collateral_file is None) == (pccs_url is None):
        raise click.UsageError("give either --collateral FILE or --pccs-url URL")
    policy = Policy.from_file(policy_file) if policy_file else DEFAULT_POLICY
    now = time.time() if at is None else at
    if collateral_file is not None:
        collateral = Collateral.from_json(read_input(collateral_file, "collateral file"))
    else:
        client = _client(ctx.ensure_object(CliContext), pccs_url)
        collateral = client.collateral_for(parse_quote(raw), now)
    verdict = appraise(raw, collateral, now, policy)
    _print_verdict(verdict, output_format)
    if not verdict.ok:
        ctx.exit(1)


# --root for every command that asks this TEE for a quote (also `scm ca csr --attest`).
tee_root_option = root_option("Find configfs-tsm or /dev/attestation below this directory.")


@attest_group.command("quote")
@click.option("--report-data", required=True, help="64 bytes of REPORTDATA, as hex.")
@tee_root_option
@click.option(
    "--output",
    type=PathParam(dir_okay=False),
    help="Write the quote here atomically (default: standard output, binary).",
)
def quote_command(report_data: str, root: str, output: Path | None) -> None:
    """Generate a quote in this TDX guest or Gramine SGX enclave."""
    try:
        data = bytes.fromhex(report_data)
    except ValueError:
        raise click.BadParameter("not hex", param_hint="--report-data") from None
    from scm.attestation.evidence import generate_quote

    evidence = generate_quote(data, Path(root))
    if output is None:
        sys.stdout.buffer.write(evidence.quote)
    else:
        write_output(output, evidence.quote)


@attest_group.group("collateral")
def collateral_group() -> None:
    """Collateral for offline verification."""


@collateral_group.command("fetch")
@click.argument("quote_file", type=PathParam(dir_okay=False))
@click.option("--pccs-url", help="PCCS or PCS base URL (default: [attestation] pccs_url).")
@click.option(
    "--output",
    type=PathParam(dir_okay=False),
    required=True,
    help="Write the bundle (QuoteCollateralV3 JSON) here, atomically.",
)
@pass_cli
def fetch_command(obj: CliContext, quote_file: Path, pccs_url: str | None, output: Path) -> None:
    """Fetch the collateral for the platform that produced QUOTE_FILE into an offline bundle."""
    from scm.attestation import parse_quote
    from scm.attestation.quote import MAX_QUOTE_BYTES

    quote = parse_quote(read_input(quote_file, "quote file", MAX_QUOTE_BYTES))
    collateral = _client(obj, pccs_url, cached=False).collateral_for(quote)
    write_output(output, collateral.to_json())
    click.echo(f"wrote {output}")


def _client(obj: CliContext, pccs_url: str | None, cached: bool = True) -> PccsClient:
    from scm.attestation.pccs import AttestationSettings, PccsClient, collateral_cache_dir

    settings = obj.settings.section("attestation", AttestationSettings)
    cache = collateral_cache_dir(obj.settings.state_dir) if cached else None
    return PccsClient.from_settings(settings, pccs_url, cache)


def _print_verdict(verdict: Verdict, output_format: str) -> None:
    if output_format == "json":
        click.echo(json.dumps(verdict.to_dict(), indent=2))
        return
    advisories = ", ".join(verdict.advisory_ids) or "none"
    if verdict.ok:
        click.echo(f"accepted: {verdict.status} (advisories: {advisories})")
    else:
        detail = f" [{verdict.rule}]" if verdict.rule else ""
        status = (
            f" (TCB status {verdict.status}, advisories: {advisories})" if verdict.status else ""
        )
        click.echo(f"rejected: {verdict.reason}{detail}: {verdict.message}{status}")
    if verdict.levels:
        click.echo("matched: " + ", ".join(_level_text(level) for level in verdict.levels))


def _level_text(level: MatchedLevel) -> str:
    """``tdx_module TDX_01 ISV SVN 4: OutOfDate`` or ``platform 2024-11-13: UpToDate``."""
    where = [level.role]
    if level.identity:
        where.append(level.identity)
    if level.isv_svn is not None:
        where.append(f"ISV SVN {level.isv_svn}")
    if level.tcb_date:
        where.append(level.tcb_date[:10])
    return f"{' '.join(where)}: {level.status}"
