"""The xDS rules for one stream: nonces, ACK, NACK, stale requests, subscriptions.

Stated once, here, for both flavours of the protocol; the stream code only asks these
objects what a request means and what to send. No I/O happens in this module.

Every response carries a fresh nonce. A request that echoes a nonce answers the
response with that nonce:

- no nonce: a first request (or a new subscription): answer it;
- the nonce of a response still awaiting its answer, without ``error_detail``: an ACK,
  the client now runs the version it echoes;
- the same with ``error_detail``: a NACK. The client keeps its last good version; the
  error is logged and counted, and the rejected version is never sent again on this
  stream (that would only loop): the next response comes when the secret changes;
- any other well-formed nonce: stale (an answer to a response that a newer one has
  superseded): ignored, except that a delta request's subscribe and unsubscribe lists
  always apply, since they are changes and not state;
- a nonce this stream never sent (not hex, or a number past the last one it sent):
  a protocol error that ends the stream.

In state-of-the-world streams only the latest response awaits an answer, and a change
of ``resource_names`` is a change of subscription. In delta streams every response
awaits its own answer, and versions are tracked per resource.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from scm.sds.peertext import escaped

NONCE_PATTERN = re.compile(r"[1-9a-f][0-9a-f]{0,15}")
MAX_OUTSTANDING = 64  # delta responses kept awaiting an answer; older ones count as stale


class ProtocolViolation(Exception):
    """A request no conforming client sends; the stream ends with INVALID_ARGUMENT."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Verdict(enum.Enum):
    REQUEST = "request"
    ACK = "ack"
    NACK = "nack"
    STALE = "stale"


@dataclass(frozen=True)
class Decision:
    """What a request meant and whether it needs an answer."""

    verdict: Verdict
    respond: bool = False
    error: str = ""


class NonceCounter:
    """Nonces for one stream: the hex numbers 1, 2, 3, ... in the order they are sent.

    The set of nonces a stream has sent is exactly 1..last, so remembering them all
    takes one integer however long the stream lives.
    """

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> str:
        self._last += 1
        return f"{self._last:x}"

    def check(self, nonce: str) -> None:
        """Raise :class:`ProtocolViolation` unless ``nonce`` is empty or one we sent."""
        if not nonce:
            return
        if not NONCE_PATTERN.fullmatch(nonce) or int(nonce, 16) > self._last:
            raise ProtocolViolation(
                "unknown_nonce",
                f"response_nonce {escaped(nonce, 40)} was never sent on this stream",
            )


@dataclass
class SotwState:
    """State of one state-of-the-world stream (StreamSecrets)."""

    names: frozenset[str] = frozenset()
    sent_nonce: str | None = None
    sent_version: str | None = None
    acked_version: str | None = None
    rejected_version: str | None = None
    answered: bool = False
    nonces: NonceCounter = field(default_factory=NonceCounter)

    def on_request(
        self, nonce: str, names: Iterable[str], version: str, error: str | None
    ) -> Decision:
        """Classify a request; ``error`` is the error_detail message if one is set."""
        self.nonces.check(nonce)
        if nonce and nonce != self.sent_nonce:
            return Decision(Verdict.STALE)
        wanted = frozenset(names)
        changed = wanted != self.names
        self.names = wanted
        if not nonce:
            return Decision(Verdict.REQUEST, respond=True)
        if self.answered:
            # The client repeats the latest nonce until a new response: a new
            # resource_names list under it is a subscription change, else a duplicate.
            return Decision(Verdict.REQUEST if changed else Verdict.STALE, respond=changed)
        self.answered = True
        if error is not None:
            self.rejected_version = self.sent_version
            return Decision(Verdict.NACK, respond=changed, error=error)
        self.acked_version = version
        return Decision(Verdict.ACK, respond=changed)

    def needs(self, version: str) -> bool:
        """Whether a response with ``version`` is news to the client."""
        return version not in (self.sent_version, self.rejected_version)

    def sending(self, version: str) -> str:
        """Record a response about to be sent; returns its nonce."""
        self.sent_nonce = self.nonces.next()
        self.sent_version = version
        self.answered = False
        return self.sent_nonce


@dataclass
class DeltaState:
    """State of one incremental stream (DeltaSecrets): per-resource versions."""

    subscribed: set[str] = field(default_factory=set)
    sent: dict[str, str] = field(default_factory=dict)  # name -> version the client was sent
    acked: dict[str, str] = field(default_factory=dict)  # name -> version the client ACKed
    rejected: dict[str, str] = field(default_factory=dict)  # name -> version it NACKed
    outstanding: dict[str, dict[str, str | None]] = field(default_factory=dict)
    nonces: NonceCounter = field(default_factory=NonceCounter)
    started: bool = False

    def on_request(
        self,
        nonce: str,
        subscribe: Iterable[str],
        unsubscribe: Iterable[str],
        initial_versions: Mapping[str, str],
        error: str | None,
    ) -> tuple[Decision, set[str]]:
        """Classify a request and apply its subscription changes.

        Returns the decision and the names newly subscribed (which may need sending).
        """
        self.nonces.check(nonce)
        if not self.started:
            self.started = True
            # The client already holds these versions (from an earlier stream).
            self.sent.update(initial_versions)
            self.acked.update(initial_versions)
        added = {n for n in subscribe if n not in self.subscribed}
        self.subscribed |= added
        for name in unsubscribe:
            self.subscribed.discard(name)
            self.sent.pop(name, None)
            self.acked.pop(name, None)
        if not nonce:
            return Decision(Verdict.REQUEST, respond=bool(added)), added
        answered = self.outstanding.pop(nonce, None)
        if answered is None:
            return Decision(Verdict.STALE, respond=bool(added)), added
        if error is not None:
            for name, version in answered.items():
                if version is not None:
                    self.rejected[name] = version
            return Decision(Verdict.NACK, respond=bool(added), error=error), added
        for name, version in answered.items():
            if version is None:
                self.acked.pop(name, None)
            elif name in self.subscribed:
                self.acked[name] = version
        return Decision(Verdict.ACK, respond=bool(added)), added

    def needs(self, name: str, version: str | None) -> bool:
        """Whether the client lacks this version of ``name`` (None: it was removed)."""
        if version is None:
            return name in self.sent
        return self.sent.get(name) != version and self.rejected.get(name) != version

    def sending(self, versions: Mapping[str, str | None]) -> str:
        """Record a response carrying ``versions`` (None: removed); returns its nonce."""
        for name, version in versions.items():
            if version is None:
                self.sent.pop(name, None)
            else:
                self.sent[name] = version
        nonce = self.nonces.next()
        self.outstanding[nonce] = dict(versions)
        if len(self.outstanding) > MAX_OUTSTANDING:
            del self.outstanding[next(iter(self.outstanding))]
        return nonce
