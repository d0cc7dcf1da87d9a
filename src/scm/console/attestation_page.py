"""The attestation page: verify a pasted or uploaded quote and show how the verdict was reached.

Verification and appraisal are :func:`scm.attestation.policy.appraise`; this module only
reads the form (bounded), and shows the verifier's steps, TCB status and deciding rule.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import BodyPartReader, web

from scm.attestation import (
    Collateral,
    CollateralError,
    Quote,
    QuoteFormatError,
    Verdict,
    parse_quote,
)
from scm.attestation.pccs import PccsClient
from scm.attestation.policy import Policy, appraise
from scm.attestation.verdict import REASONS, quote_summary
from scm.console.html import Html, facts, join, moment, table, tag, text
from scm.errors import ScmError
from scm.files import read_input

# A DCAP quote with its certification data is a few KiB; collateral tens of KiB.
MAX_QUOTE_BYTES = 64 * 1024
MAX_COLLATERAL_BYTES = 512 * 1024
MAX_FIELD_BYTES = 4 * MAX_COLLATERAL_BYTES
ADVISORY_URL = "https://www.intel.com/content/www/us/en/security-center/advisory/{}.html"
_ADVISORY_ID = re.compile(r"INTEL-SA-\d{5}")

# The verifier's order (scm.attestation.verify), each with the reasons that fail it.
STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Quote follows the DCAP layout", ("malformed_quote",)),
    ("Collateral can be read", ("malformed_collateral",)),
    ("PCK certificate chain leads to the Intel SGX Root CA", ("pck_chain_invalid",)),
    ("CRLs valid, no certificate revoked", ("crl_invalid", "revoked")),
    (
        "TCB Info and QE Identity signed, current and for this platform",
        (
            "collateral_chain_invalid",
            "tcb_info_signature_invalid",
            "qe_identity_signature_invalid",
            "collateral_expired",
            "collateral_not_yet_valid",
            "collateral_mismatch",
        ),
    ),
    (
        "QE report signed by the PCK key and binds the attestation key",
        ("qe_report_signature_invalid", "qe_report_data_mismatch"),
    ),
    ("Quoting enclave matches QE Identity", ("qe_identity_mismatch",)),
    ("Quote signed by the attestation key", ("quote_signature_invalid",)),
    ("TCB level matched", ("tcb_not_supported", "tdx_module_mismatch", "tcb_revoked")),
    (
        "Report attributes (debug, TD attributes, service TD)",
        ("debug_enabled", "td_attributes_invalid", "service_td_bound"),
    ),
    ("Appraisal policy accepts it", ("policy_rejected",)),
)


class FormError(ScmError):
    """The submitted form cannot be used (shown on the page, never a traceback)."""


@dataclass(frozen=True)
class Submission:
    quote: bytes
    collateral: bytes | None
    verify_at: datetime.datetime | None


def form(configured: Path | None, pccs: PccsClient | None = None) -> Html:
    """The paste/upload form; collateral is optional when a bundle or a PCCS is configured."""
    if configured:
        note = f"Leave collateral empty to use the configured bundle ({configured.name})."
    elif pccs:
        note = f"Leave collateral empty to fetch it from {pccs.base_url}."
    else:
        note = "No collateral is configured: upload a bundle (QuoteCollateralV3 JSON)."
    return tag(
        "form",
        tag("label", "Quote (hex or base64)", tag("textarea", name="quote_text", rows=4)),
        tag("label", "or quote file", Html('<input type="file" name="quote_file">')),
        tag("label", "Collateral file", Html('<input type="file" name="collateral_file">')),
        tag("p", note, class_="hint"),
        tag(
            "label",
            "Verify at (UTC, e.g. 2025-07-04T10:00:00Z; empty: now)",
            Html('<input type="text" name="verify_at" id="verify_at">'),
        ),
        Html('<button type="submit" id="verify">Verify</button>'),
        method="post",
        enctype="multipart/form-data",
        id="attest-form",
    )


async def read_submission(request: web.Request) -> Submission:
    """The form's fields, each bounded in size; a FormError says what is wrong."""
    if not request.content_type.startswith("multipart/"):
        raise FormError("send the form as multipart/form-data")
    fields: dict[str, bytes] = {}
    total = 0
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        limit = MAX_COLLATERAL_BYTES if part.name == "collateral_file" else MAX_QUOTE_BYTES * 2
        value = await _read_bounded(part, limit)
        total += len(value)
        if total > MAX_FIELD_BYTES:
            raise FormError("the form is too large")
        fields[part.name] = value
    quote = fields.get("quote_file") or _decode_text(fields.get("quote_text", b""))
    if not quote:
        raise FormError("paste a quote or choose a quote file")
    if len(quote) > MAX_QUOTE_BYTES:
        raise FormError(f"the quote is larger than {MAX_QUOTE_BYTES} bytes")
    return Submission(
        quote=quote,
        collateral=fields.get("collateral_file") or None,
        verify_at=_parse_time(fields.get("verify_at", b"").decode(errors="replace").strip()),
    )


async def verify_submission(
    submission: Submission,
    configured: Path | None,
    policy: Policy,
    now: datetime.datetime,
    pccs: PccsClient | None = None,
) -> Html:
    """Appraise the submitted quote; the result section (verdict, steps, report).

    Collateral comes from the upload, else the configured bundle, else the PCCS.
    """
    when = submission.verify_at or now
    try:
        quote = parse_quote(submission.quote)
    except QuoteFormatError as exc:
        return render_verdict(Verdict(reason="malformed_quote", message=str(exc)), when, "none")
    try:
        collateral, source = await _collateral(submission, configured, pccs, quote, when)
    except CollateralError as exc:
        verdict = Verdict(quote=quote, reason="malformed_collateral", message=str(exc))
        return render_verdict(verdict, when, "unreadable collateral")
    verdict = await asyncio.to_thread(appraise, quote, collateral, when, policy)
    return render_verdict(verdict, when, source)


async def _collateral(
    submission: Submission,
    configured: Path | None,
    pccs: PccsClient | None,
    quote: Quote,
    when: datetime.datetime,
) -> tuple[Collateral, str]:
    if submission.collateral is not None:
        return Collateral.from_json(submission.collateral), "uploaded collateral"
    if configured is not None:
        text = await asyncio.to_thread(read_input, configured, "collateral bundle")
        return Collateral.from_json(text), f"configured bundle {configured.name}"
    if pccs is not None:
        fetched = await asyncio.to_thread(pccs.collateral_for, quote, when.timestamp())
        return fetched, f"fetched from {pccs.base_url}"
    raise FormError(
        "no collateral: upload a bundle, or start the console with --collateral or --pccs-url"
    )


def render_verdict(verdict: Verdict, when: datetime.datetime, source: str) -> Html:
    if verdict.ok:
        headline = tag("p", f"Accepted: TCB status {verdict.status}", class_="verdict ok")
        rule = "accepted_statuses (and every other rule) accept it"
    else:
        headline = tag("p", f"Rejected: {verdict.reason}: {verdict.message}", class_="verdict bad")
        rule = verdict.rule or "none: verification failed before the policy ran"
    summary = facts(
        [
            ("verified at", moment(when)),
            ("collateral", source),
            ("TCB status", tag("span", verdict.status, class_="tcb-status")),
            ("advisories", advisories(verdict.advisory_ids)),
            ("deciding policy rule", tag("span", rule, class_="rule")),
        ]
    )
    report = (
        table(["field", "value"], [[k, tag("code", str(v))] for k, v in
                                   quote_summary(verdict.quote).items()])
        if verdict.quote is not None
        else tag("p", "The quote could not be parsed.")
    )  # fmt: skip
    return tag(
        "section",
        tag("h2", "Verdict"),
        headline,
        summary,
        tag("h3", "Verification steps"),
        steps(verdict),
        tag("h3", "Parsed report"),
        report,
        id="result",
    )


def steps(verdict: Verdict) -> Html:
    """Each step as passed, failed or not run, from the reason the verifier stopped at."""
    failed_at = next(
        (index for index, (_, reasons) in enumerate(STEPS) if verdict.reason in reasons),
        None,
    )
    items = []
    for index, (title, _) in enumerate(STEPS):
        if failed_at is None or index < failed_at:
            state, label = "passed", "passed"
        elif index == failed_at:
            state, label = "failed", f"failed: {REASONS.get(verdict.reason or '', '')}"
        else:
            state, label = "skipped", "not run"
        items.append(tag("li", join([tag("span", label, class_="state"), " ", title]),
                         class_=f"step {state}"))  # fmt: skip
    return tag("ol", *items, class_="steps")


def advisories(ids: tuple[str, ...]) -> Html:
    if not ids:
        return text("none")
    links = []
    for advisory in ids:
        if _ADVISORY_ID.fullmatch(advisory):
            href = ADVISORY_URL.format(advisory.lower())
            links.append(tag("a", advisory, href=href, rel="noreferrer", class_="advisory"))
        else:
            links.append(tag("span", advisory, class_="advisory"))
    return join(join([link, " "]) for link in links)


async def _read_bounded(part: BodyPartReader, limit: int) -> bytes:
    chunks = bytearray()
    while chunk := await part.read_chunk(16 * 1024):
        chunks += chunk
        if len(chunks) > limit:
            raise FormError(f"the field {part.name!r} is larger than {limit} bytes")
    return bytes(chunks)


def _decode_text(raw: bytes) -> bytes:
    """A pasted quote: hex (spaces and newlines allowed) or base64."""
    compact = re.sub(rb"\s+", b"", raw)
    if not compact:
        return b""
    try:
        return bytes.fromhex(compact.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        pass
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise FormError("the pasted quote is neither hex nor base64") from None


def _parse_time(value: str) -> datetime.datetime | None:
    if not value:
        return None
    if value.isdigit():
        try:
            return datetime.datetime.fromtimestamp(int(value), datetime.UTC)
        except (OverflowError, OSError, ValueError):
            raise FormError(f"verify-at time {value} is out of range") from None
    try:
        when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FormError(f"verify-at time {value!r} is not an ISO 8601 time") from None
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)
