"""SPIFFE ID syntax (the SPIFFE ID specification), checked before anything trusts an ID.

``spiffe://<trust domain>/<path>``: the scheme in lowercase; a trust domain of lowercase
letters, digits, ``.``, ``-`` and ``_`` (no port, no userinfo); a path of segments of
letters, digits, ``.``, ``-`` and ``_``, none empty, ``.`` or ``..``; no query or
fragment; 2048 bytes at most. A workload's ID has a path (``spiffe://td`` alone names
the trust domain).
"""

from __future__ import annotations

import re

from scm.errors import InputError
from scm.pki.errors import CertificateRequestError

SPIFFE_SCHEME = "spiffe://"
SPIFFE_ID_MAX = 2048  # bytes
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]{1,255}")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
SHOWN = 80  # how much of a hostile value an error message repeats


def shown(value: str) -> str:
    """``value`` quoted for an error message, cut short: it may come from an attacker."""
    text = value if len(value) <= SHOWN else value[:SHOWN] + "..."
    return repr(text)


def check_trust_domain(value: str) -> str:
    """``value`` when it is a SPIFFE trust domain name; CertificateRequestError otherwise."""
    if not _TRUST_DOMAIN.fullmatch(value):
        raise CertificateRequestError(
            f"invalid trust domain {value!r}: use lowercase letters, digits, '.', '-' and '_'"
        )
    return value


def spiffe_id_problem(value: str) -> str | None:
    """Why ``value`` is not a SPIFFE ID naming a workload, or None when it is one."""
    if len(value.encode()) > SPIFFE_ID_MAX:
        return f"is longer than {SPIFFE_ID_MAX} bytes"
    if not value.startswith(SPIFFE_SCHEME):
        return "does not start with spiffe:// (lowercase)"
    if "?" in value or "#" in value:
        return "has a query or fragment"
    authority, slash, path = value[len(SPIFFE_SCHEME) :].partition("/")
    if "@" in authority:
        return "has userinfo"
    if ":" in authority:
        return "has a port"
    try:
        check_trust_domain(authority)
    except InputError:
        return "has a trust domain that is not lowercase letters, digits, '.', '-' and '_'"
    if not slash or not path:
        return "has no path (it names a trust domain, not a workload)"
    for segment in path.split("/"):
        if not segment:
            return "has an empty path segment"
        if segment in (".", ".."):
            return "has a '.' or '..' path segment"
        if not _SEGMENT.fullmatch(segment):
            return "has a path segment that is not letters, digits, '.', '-' and '_'"
    return None


def check_spiffe_id(value: str) -> str:
    """``value`` when it is a workload SPIFFE ID; CertificateRequestError naming why not."""
    problem = spiffe_id_problem(value)
    if problem is not None:
        raise CertificateRequestError(f"SPIFFE ID {shown(value)} {problem}")
    return value


def trust_domain_of(spiffe_id: str) -> str:
    return spiffe_id[len(SPIFFE_SCHEME) :].partition("/")[0]
