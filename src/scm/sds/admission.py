"""Who may hold connections to the SDS server, and how refusals are told and logged.

Checked by the peer gate when a connection is accepted, before any gRPC work: the
peer's uid (SO_PEERCRED) against the allow-list, then its share of connections and the
server's total. The total is also bounded by the process's descriptor limit minus a
reserve, so a flood is refused while the server still has descriptors to serve the
peers it admitted (and never meets EMFILE in accept).
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

log = logging.getLogger(__name__)

# Descriptors one relayed connection costs: the accepted socket, the gate's connection
# to the private gRPC socket, and gRPC's side of that connection.
DESCRIPTORS_PER_RELAYED_CONNECTION = 3
DEFAULT_DESCRIPTOR_RESERVE = 256
LOG_INTERVAL_S = 60.0

NOT_ALLOWED = "peer_not_allowed"
TOO_MANY_CONNECTIONS = "too_many_connections"
TOO_MANY_FOR_UID = "too_many_connections_for_uid"

_STATUS = {
    NOT_ALLOWED: (
        grpc.StatusCode.PERMISSION_DENIED,
        "this process's uid is not allowed to use the SDS socket",
    ),
    TOO_MANY_CONNECTIONS: (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "the SDS server holds as many connections as it may; try again later",
    ),
    TOO_MANY_FOR_UID: (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "this uid holds as many SDS connections as it may; close some first",
    ),
}


def refusal_status(reason: str) -> tuple[grpc.StatusCode, str]:
    """The gRPC status and message a peer refused for ``reason`` receives."""
    return _STATUS[reason]


@dataclass(frozen=True)
class AdmissionLimits:
    """Connection limits at the gate (0 means no limit of that kind)."""

    allowed_uids: frozenset[int] | None = None  # None: any uid that can open the socket
    max_connections: int = 0
    max_connections_per_uid: int = 0
    # Refused peers answered with a status at once; beyond, refusals are a plain close.
    max_refusals_in_flight: int = 64
    refusal_timeout_s: float = 5.0
    # Refusals per second the gate spends CPU on; past it, it stops accepting briefly.
    max_refusals_per_second: int = 500

    @property
    def gated(self) -> bool:
        """Whether a gate must see each connection (an allow-list or a per-uid limit)."""
        return self.allowed_uids is not None or self.max_connections_per_uid > 0


def descriptor_budget(reserve: int = DEFAULT_DESCRIPTOR_RESERVE) -> int:
    """Descriptors the server may spend on connections: its soft limit, raised to the
    hard limit, minus ``reserve`` (kept for files, the token, the monitor, logs)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass  # keep the soft limit we have
    return max(0, soft - reserve)


def connection_cap(max_connections: int, budget: int, per_connection: int) -> int:
    """The number of connections to admit: the configured cap within the budget."""
    by_descriptors = budget // per_connection
    return min(max_connections, by_descriptors) if max_connections else by_descriptors


class ConnectionCounts:
    """Live connections in total and per uid; decides admission."""

    def __init__(self, limits: AdmissionLimits, cap: int) -> None:
        self.limits = limits
        self.cap = cap
        self.total = 0
        self.per_uid: dict[int, int] = {}

    def refusal(self, uid: int) -> str | None:
        """Why a new connection from ``uid`` is refused, or None to admit it."""
        if self.limits.allowed_uids is not None and uid not in self.limits.allowed_uids:
            return NOT_ALLOWED
        if self.total >= self.cap:
            return TOO_MANY_CONNECTIONS
        per_uid = self.limits.max_connections_per_uid
        if per_uid and self.per_uid.get(uid, 0) >= per_uid:
            return TOO_MANY_FOR_UID
        return None

    def opened(self, uid: int) -> None:
        self.total += 1
        self.per_uid[uid] = self.per_uid.get(uid, 0) + 1

    def closed(self, uid: int) -> None:
        self.total -= 1
        left = self.per_uid[uid] - 1
        if left:
            self.per_uid[uid] = left
        else:
            del self.per_uid[uid]


class RefusalLog:
    """Logs a refusal once per peer and reason per minute; the rest are only counted."""

    MAX_REMEMBERED = 4096

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}

    def should_log(self, peer: str, reason: str) -> bool:
        now = self.clock()
        key = (peer, reason)
        last = self._last.get(key)
        if last is not None and now - last < LOG_INTERVAL_S:
            return False
        if len(self._last) >= self.MAX_REMEMBERED:  # bounded: forget the quiet ones
            self._last = {k: t for k, t in self._last.items() if now - t < LOG_INTERVAL_S}
            if len(self._last) >= self.MAX_REMEMBERED:
                return False
        self._last[key] = now
        return True

    def refused(self, peer: str, reason: str, detail: str) -> None:
        if self.should_log(peer, reason):
            log.warning(
                "refused %s: %s (%s; further refusals for the next minute are only counted)",
                peer,
                reason,
                detail,
            )


class RefusalPacer:
    """Caps how many refusals per second the gate spends CPU on.

    A process that may open the socket and connects in a loop is refused as fast as the
    gate can accept, which takes the event loop away from the Envoys already connected.
    Past ``per_second`` refusals in one second the gate stops accepting until the second
    is over: new connections wait in (or are refused by) the kernel's backlog, which the
    flood keeps full anyway, while admitted connections keep the CPU.
    """

    def __init__(self, per_second: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.clock = clock
        self._window_start = clock()
        self._refused = 0

    def refused(self) -> float:
        """Note one refusal; returns how long to stop accepting (0: carry on)."""
        now = self.clock()
        if now - self._window_start >= 1.0:
            self._window_start, self._refused = now, 0
        self._refused += 1
        if self._refused < self.per_second:
            return 0.0
        return max(0.0, self._window_start + 1.0 - now)
