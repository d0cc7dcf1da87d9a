"""Appraisal policy: which verified quotes a relying party accepts.

A policy is a TOML file; every key is optional::

    accepted_statuses = ["UpToDate", "SWHardeningNeeded"]   # the default
    # also: ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate,
    # OutOfDateConfigurationNeeded, TDRelaunchAdvised, TDRelaunchAdvisedConfigurationNeeded
    # (the last two: a TD 1.5 launched on an out-of-date TCB, on a platform updated since;
    # refused by default because the TD still runs what it measured at launch). Revoked is
    # always rejected.
    out_of_date_grace_days = 30      # accept OutOfDate for 30 days after a newer TCB appeared
    allowed_advisories = []          # when non-empty, every advisory must be listed here
    denied_advisories = ["INTEL-SA-00615"]
    allow_debug = false              # the default: debug enclaves and TDs are rejected
    allow_service_td = false         # the default: TDs bound to a service TD are rejected
    report_data = "hex"              # exact REPORTDATA (64 bytes)

    [sgx]                            # expected enclave identity (lists mean "any of")
    mr_enclave = ["hex", ...]
    mr_signer = ["hex"]
    isv_prod_id = 1
    min_isv_svn = 2

    [tdx]                            # expected TD measurements
    mr_td = ["hex"]
    rtmr0 = ["hex"]                  # likewise rtmr1, rtmr2, rtmr3
    td_attributes = "hex"
    xfam = "hex"

A rejected verdict names the rule that failed (``rule``), e.g. ``sgx.mr_enclave``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scm.attestation import tcb
from scm.attestation.collateral import Collateral
from scm.attestation.errors import PolicyError
from scm.attestation.quote import EnclaveReport, Quote, TdReport
from scm.attestation.verdict import Verdict
from scm.attestation.verify import verify

_TOP_KEYS = {
    "accepted_statuses",
    "out_of_date_grace_days",
    "allowed_advisories",
    "denied_advisories",
    "allow_debug",
    "allow_service_td",
    "report_data",
    "sgx",
    "tdx",
}
_SGX_KEYS = {"mr_enclave", "mr_signer", "isv_prod_id", "min_isv_svn"}
_TDX_KEYS = {"mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "td_attributes", "xfam"}
_LIST_MEASUREMENTS = {"mr_enclave", "mr_signer", "mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3"}
_MEASUREMENT_BYTES = {"mr_enclave": 32, "mr_signer": 32, "td_attributes": 8, "xfam": 8}


@dataclass(frozen=True)
class Policy:
    """What to accept; the defaults are the safe choice."""

    accepted_statuses: tuple[str, ...] = (tcb.UP_TO_DATE, tcb.SW_HARDENING_NEEDED)
    out_of_date_grace_days: int = 0
    allowed_advisories: tuple[str, ...] = ()
    denied_advisories: tuple[str, ...] = ()
    allow_debug: bool = False
    allow_service_td: bool = False
    report_data: bytes | None = None
    sgx: dict[str, Any] = field(default_factory=dict)
    tdx: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_toml(cls, text: str, source: str = "policy") -> Policy:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{source} is not valid TOML: {exc}") from None
        return cls.from_dict(doc, source)

    @classmethod
    def from_file(cls, path: Path) -> Policy:
        try:
            text = path.read_text()
        except OSError as exc:
            raise PolicyError(f"cannot read policy {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise PolicyError(f"policy {path} is not a TOML text file") from None
        return cls.from_toml(text, str(path))

    @classmethod
    def from_dict(cls, doc: dict[str, Any], source: str = "policy") -> Policy:
        _no_unknown(doc, _TOP_KEYS, "", source)
        statuses = tuple(_strings(doc, "accepted_statuses", source, cls.accepted_statuses))
        for status in statuses:
            if status not in tcb.STATUSES:
                raise PolicyError(f"{source}: unknown TCB status {status!r} in accepted_statuses")
        sgx = _table(doc, "sgx", _SGX_KEYS, source)
        tdx = _table(doc, "tdx", _TDX_KEYS, source)
        return cls(
            accepted_statuses=statuses,
            out_of_date_grace_days=_int(doc, "out_of_date_grace_days", source, 0),
            allowed_advisories=tuple(_strings(doc, "allowed_advisories", source, ())),
            denied_advisories=tuple(_strings(doc, "denied_advisories", source, ())),
            allow_debug=_bool(doc, "allow_debug", source),
            allow_service_td=_bool(doc, "allow_service_td", source),
            report_data=_hex(doc["report_data"], "report_data", source, 64)
            if "report_data" in doc
            else None,
            sgx=sgx,
            tdx=tdx,
        )

    def check(self, verdict: Verdict, now: datetime) -> Verdict:
        """``verdict`` unchanged when the policy accepts it, else a rejection naming the rule."""
        if not verdict.ok or verdict.quote is None:
            return verdict
        for rule, problem in self._problems(verdict, verdict.quote, now):
            return verdict.rejected("policy_rejected", f"policy rule {rule}: {problem}", rule)
        return verdict

    def _problems(self, verdict: Verdict, quote: Quote, now: datetime) -> Any:
        status = verdict.status
        if status not in self.accepted_statuses and not self._in_grace(verdict, now):
            yield "accepted_statuses", f"TCB status {status} is not accepted"
        for advisory in verdict.advisory_ids:
            if advisory in self.denied_advisories:
                yield "denied_advisories", f"advisory {advisory} is denied"
            if self.allowed_advisories and advisory not in self.allowed_advisories:
                yield "allowed_advisories", f"advisory {advisory} is not in the allowed list"
        report = quote.report
        if self.report_data is not None and report.report_data != self.report_data:
            yield "report_data", "REPORTDATA is not the expected value"
        if isinstance(report, EnclaveReport):
            yield from _measurement_problems("sgx", self.sgx, _sgx_values(report))
            if "isv_prod_id" in self.sgx and report.isv_prod_id != self.sgx["isv_prod_id"]:
                yield "sgx.isv_prod_id", f"ISV_PROD_ID {report.isv_prod_id} is not expected"
            if report.isv_svn < self.sgx.get("min_isv_svn", 0):
                yield "sgx.min_isv_svn", f"ISV_SVN {report.isv_svn} is below the minimum"
            if self.tdx:
                yield "tdx", "the policy expects a TDX quote"
        elif isinstance(report, TdReport):
            yield from _measurement_problems("tdx", self.tdx, _tdx_values(report))
            if self.sgx:
                yield "sgx", "the policy expects an SGX quote"

    def _in_grace(self, verdict: Verdict, now: datetime) -> bool:
        """OutOfDate within the grace period after a newer TCB level was published."""
        if verdict.status != tcb.OUT_OF_DATE or self.out_of_date_grace_days <= 0:
            return False
        since = verdict.superseded_at
        return since is not None and now - since <= timedelta(days=self.out_of_date_grace_days)


DEFAULT_POLICY = Policy()


def appraise(
    quote: bytes | Quote,
    collateral: Collateral,
    now: int | float | datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Verdict:
    """Verify ``quote`` and apply ``policy``; the verdict is ok only when both accept."""
    when = now if isinstance(now, datetime) else datetime.fromtimestamp(now, UTC)
    verdict = verify(
        quote,
        collateral,
        when,
        allow_debug=policy.allow_debug,
        allow_service_td=policy.allow_service_td,
    )
    return policy.check(verdict, when)


def _sgx_values(report: EnclaveReport) -> dict[str, bytes]:
    return {"mr_enclave": report.mr_enclave, "mr_signer": report.mr_signer}


def _tdx_values(report: TdReport) -> dict[str, bytes]:
    values = {f"rtmr{i}": rtmr for i, rtmr in enumerate(report.rtmrs)}
    values.update(mr_td=report.mr_td, td_attributes=report.td_attributes, xfam=report.xfam)
    return values


def _measurement_problems(table: str, expected: dict[str, Any], actual: dict[str, bytes]) -> Any:
    for key, value in actual.items():
        if key not in expected:
            continue
        allowed = expected[key] if isinstance(expected[key], tuple) else (expected[key],)
        if value not in allowed:
            yield f"{table}.{key}", f"{key.upper()} {value.hex()} is not an expected value"


def _no_unknown(doc: dict[str, Any], known: set[str], prefix: str, source: str) -> None:
    unknown = sorted(set(doc) - known)
    if unknown:
        raise PolicyError(f"{source}: unknown policy key {prefix}{unknown[0]}")


def _table(doc: dict[str, Any], name: str, known: set[str], source: str) -> dict[str, Any]:
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise PolicyError(f"{source}: {name} must be a table")
    _no_unknown(table, known, f"{name}.", source)
    out: dict[str, Any] = {}
    for key, value in table.items():
        where = f"{name}.{key}"
        if key in ("isv_prod_id", "min_isv_svn"):
            out[key] = _int(table, key, source, 0)
        elif key in _LIST_MEASUREMENTS:
            values = value if isinstance(value, list) else [value]
            size = _MEASUREMENT_BYTES.get(key, 48)
            out[key] = tuple(_hex(v, where, source, size) for v in values)
        else:
            out[key] = _hex(value, where, source, _MEASUREMENT_BYTES[key])
    return out


def _hex(value: Any, where: str, source: str, size: int) -> bytes:
    try:
        data = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        data = None
    if data is None or len(data) != size:
        raise PolicyError(f"{source}: {where} must be {size} bytes of hex")
    return data


def _strings(doc: dict[str, Any], key: str, source: str, default: Any) -> Any:
    value = doc.get(key, default)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{source}: {key} must be a list of strings")
    return value


def _int(doc: dict[str, Any], key: str, source: str, default: int) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyError(f"{source}: {key} must be a non-negative integer")
    return value


def _bool(doc: dict[str, Any], key: str, source: str) -> bool:
    value = doc.get(key, False)
    if not isinstance(value, bool):
        raise PolicyError(f"{source}: {key} must be true or false")
    return value
