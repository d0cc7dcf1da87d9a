"""``envoy.service.secret.v3.SecretDiscoveryService``: StreamSecrets, DeltaSecrets, FetchSecrets.

Each stream reads requests in one task and answers from another loop that also wakes
when a watched secret changes in the store, so a rotation reaches every stream without
waiting for the client. What a request means is decided in :mod:`scm.sds.protocol`.

Backpressure: a stream holds at most one request it has not handled. The reader takes
the next message from gRPC only once the previous one has been answered (its response
written), so a client that sends faster than it reads meets HTTP/2 flow control instead
of filling the server's memory. A change in the store is a flag and an event, never a
queued item, so nothing per stream grows with what the peer sends or how often secrets
change.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

from scm.errors import ScmError
from scm.sds import departure
from scm.sds.admission import RefusalLog
from scm.sds.metrics import SdsMetrics
from scm.sds.peertext import escaped
from scm.sds.protocol import DeltaState, ProtocolViolation, SotwState, Verdict
from scm.sds.render import SECRET_TYPE_URL, SecretRenderer
from scm.sds.store import SecretStore, StoredSecret, UnknownSecretError
from scm.sds.wire import Malformed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one client may ask of the server."""

    max_streams: int = 20_000  # 10,000 Envoys with a default and a ROOTCA stream each
    max_names_per_request: int = 64
    max_name_length: int = 256


@dataclass
class StreamInfo:
    """One open stream, as /status shows it."""

    id: int
    api: str
    node_id: str = ""
    cluster: str = ""
    names: frozenset[str] = frozenset()
    acked: dict[str, str] = field(default_factory=dict)
    nacks: int = 0
    last_nack: str = ""  # Envoy's error_detail for the latest NACK
    opened_at: datetime.datetime = field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC)
    )


def describe_stream(info: StreamInfo) -> dict[str, Any]:
    """One open stream as /status shows it."""
    return {
        "id": info.id,
        "api": info.api,
        "node": info.node_id,
        "cluster": info.cluster,
        "names": sorted(info.names),
        "acked": info.acked,
        "nacks": info.nacks,
        "last_nack": info.last_nack or None,
        "opened_at": info.opened_at.isoformat(),
    }


class _Rejected(Exception):
    """End the RPC with ``code`` and a message; ``reason`` labels the metric."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


def _malformed(request: Malformed) -> _Rejected:
    return _Rejected(grpc.StatusCode.INVALID_ARGUMENT, "malformed", request.reason)


class SecretDiscoveryService:
    """The SDS servicer: secrets from ``store``, rendered by ``renderer``."""

    def __init__(
        self,
        store: SecretStore,
        renderer: SecretRenderer,
        metrics: SdsMetrics,
        limits: Limits | None = None,
        refusal_log: RefusalLog | None = None,
    ) -> None:
        self.store = store
        self.renderer = renderer
        self.metrics = metrics
        self.limits = limits or Limits()
        self.refusal_log = refusal_log or RefusalLog()
        self.streams: dict[int, StreamInfo] = {}
        self._open: dict[int, _Stream] = {}
        self._ids = itertools.count(1)
        # name -> (version, packed Secret): each version is rendered once, not per stream
        self._rendered: dict[str, tuple[str, any_pb2.Any]] = {}
        self._stopping = False  # streams cancelled from now on were not ended by a peer

    async def end_streams(self, timeout: float) -> None:
        """End every open stream normally (status OK, after the request in hand), waiting
        up to ``timeout`` seconds: a server that stops with streams still open has gRPC
        cancel their handlers, which grpc.aio logs as tracebacks. Envoy reconnects."""
        self._stopping = True
        for stream in list(self._open.values()):
            stream.ended = True
            stream.wake.set()
        deadline = asyncio.get_running_loop().time() + timeout
        while self._open and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

    # The handlers write with ``context.write`` (through :mod:`.departure`) rather than
    # yield or return their responses, so that a write to a peer that has left ends the
    # call as a departure instead of reaching grpc.aio as an internal error.

    async def StreamSecrets(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> None:
        await self._serve(_SotwStream(self), request_iterator, context)

    async def DeltaSecrets(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> None:
        await self._serve(_DeltaStream(self), request_iterator, context)

    async def FetchSecrets(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        """One response, written by the handler: served as a unary-stream method (the
        same on the wire as unary), because grpc.aio writes a unary handler's return value
        itself, where a peer that has left could not be told from an internal error."""
        self.metrics.api("fetch").requests.inc()
        try:
            try:
                if isinstance(request, Malformed):
                    raise _malformed(request)
                self._check_request(request.type_url, request.resource_names, allow_empty=False)
                secrets = [await self._obtain(n) for n in dict.fromkeys(request.resource_names)]
            except _Rejected as exc:
                self._refuse(exc, context, "fetch")
                await departure.abort(context, exc.code, str(exc))
            self.metrics.api("fetch").pushes.inc(len(secrets))
            response = discovery_pb2.DiscoveryResponse(
                version_info=_combined_version(secrets),
                resources=[self._pack(s) for s in secrets],
                type_url=SECRET_TYPE_URL,
            )
            await departure.write(context, response)
        except asyncio.CancelledError:
            log.debug("fetch: %s", self._why_cancelled())
            raise

    async def _serve(
        self,
        stream: _Stream,
        requests: AsyncIterator[Any],
        context: grpc.aio.ServicerContext,
    ) -> None:
        if len(self.streams) >= self.limits.max_streams:
            refusal = _Rejected(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "too_many_streams",
                f"too many SDS streams (limit {self.limits.max_streams})",
            )
            self._refuse(refusal, context, "new stream")
            await departure.abort(context, refusal.code, str(refusal))
        info = StreamInfo(next(self._ids), stream.api)
        stream.info = info
        self.streams[info.id] = info
        self._open[info.id] = stream
        self.metrics.api(stream.api).streams_opened.inc()
        self.metrics.api(stream.api).streams_active.inc()
        reader = asyncio.create_task(stream.read(requests))
        try:
            while True:
                await stream.wake.wait()
                stream.wake.clear()
                request = stream.take()
                if request is not None:
                    self.metrics.api(stream.api).requests.inc()
                    if isinstance(request, Malformed):
                        raise _malformed(request)
                    for response in await stream.on_request(request):
                        await departure.write(context, response)
                    stream.handled()  # only now may the reader take the next message
                if stream.changed:
                    for response in stream.on_changed():
                        await departure.write(context, response)
                if stream.ended and stream.pending is None:
                    return
        except (_Rejected, ProtocolViolation) as exc:
            code = exc.code if isinstance(exc, _Rejected) else grpc.StatusCode.INVALID_ARGUMENT
            self._refuse(exc, context, f"stream {info.id} (node {escaped(info.node_id)})")
            await departure.abort(context, code, str(exc))
        except asyncio.CancelledError:
            log.debug(
                "stream %d (node %s): %s", info.id, escaped(info.node_id), self._why_cancelled()
            )
            raise
        finally:
            reader.cancel()
            stream.close()
            del self.streams[info.id]
            del self._open[info.id]
            self.metrics.api(stream.api).streams_active.dec()

    def _why_cancelled(self) -> str:
        return "ended as the server stops" if self._stopping else "the peer left"

    def _refuse(
        self, exc: _Rejected | ProtocolViolation, context: grpc.aio.ServicerContext, where: str
    ) -> None:
        """Count a refusal; log it once per peer and reason per minute."""
        self.metrics.rejected.labels(exc.reason).inc()
        self.refusal_log.refused(str(context.peer()), exc.reason, f"{where}: {exc}")

    def _check_request(self, type_url: str, names: Iterable[str], allow_empty: bool) -> None:
        if type_url not in ("", SECRET_TYPE_URL):
            raise _Rejected(
                grpc.StatusCode.INVALID_ARGUMENT,
                "wrong_type_url",
                f"type_url {type_url[:100]!r} is not served here (only {SECRET_TYPE_URL})",
            )
        names = list(names)
        if not names and not allow_empty:
            raise _Rejected(
                grpc.StatusCode.INVALID_ARGUMENT,
                "no_names",
                "SDS requests must name the secrets they want (wildcard is not served)",
            )
        if len(names) > self.limits.max_names_per_request:
            raise _Rejected(
                grpc.StatusCode.INVALID_ARGUMENT,
                "too_many_names",
                f"{len(names)} resource names in one request "
                f"(limit {self.limits.max_names_per_request})",
            )
        for name in names:
            if not name or len(name) > self.limits.max_name_length:
                raise _Rejected(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "bad_name",
                    f"resource name {name[:40]!r} is empty or longer than "
                    f"{self.limits.max_name_length} characters",
                )

    async def _obtain(self, name: str) -> StoredSecret:
        try:
            return await self.store.obtain(name)
        except UnknownSecretError as exc:
            raise _Rejected(grpc.StatusCode.NOT_FOUND, "unknown_name", str(exc)) from None
        except ScmError as exc:  # issuance failed: the CA or the token is unavailable
            raise _Rejected(
                grpc.StatusCode.UNAVAILABLE, "issuance_failed", f"cannot issue {name}: {exc}"
            ) from None

    def _pack(self, stored: StoredSecret) -> any_pb2.Any:
        cached = self._rendered.get(stored.name)
        if cached is not None and cached[0] == stored.version:
            return cached[1]
        packed = any_pb2.Any()
        packed.Pack(self.renderer.render(stored.name, stored.value))
        self._rendered[stored.name] = (stored.version, packed)
        return packed

    def _note_answer(self, stream: _Stream, verdict: Verdict, error: str) -> None:
        info = stream.info
        if verdict is Verdict.ACK:
            self.metrics.api(stream.api).acks.inc()
        elif verdict is Verdict.NACK:
            info.nacks += 1
            info.last_nack = error[:500]
            self.metrics.api(stream.api).nacks.inc()
            # error_detail is the peer's text: never key material, but escaped (it could
            # otherwise forge log lines)
            log.warning(
                "stream %d (node %s) NACKed %s: %s",
                info.id,
                escaped(info.node_id),
                ", ".join(escaped(n, 80) for n in sorted(info.names)),
                escaped(error, 500),
            )


class _Stream:
    """The per-stream side shared by both protocol flavours: events and watches."""

    api = ""

    def __init__(self, service: SecretDiscoveryService) -> None:
        self.service = service
        self.wake = asyncio.Event()  # set when there is a request, a change or the end
        self.pending: Any = None  # the one request read but not yet handled
        self.ended = False
        self._handled = asyncio.Event()
        self.changed: set[str] = set()
        self.watched: set[str] = set()
        self.info = StreamInfo(0, self.api)

    async def read(self, requests: AsyncIterator[Any]) -> None:
        """Hand requests over one at a time, each only after the previous was handled."""
        try:
            async for request in requests:
                self._handled.clear()
                self.pending = request
                self.wake.set()
                await self._handled.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the transport failed (oversized message, reset)
            log.debug("stream %d: reading failed: %s", self.info.id, exc)
        self.ended = True
        self.wake.set()

    def take(self) -> Any:
        """The request waiting to be handled, if any."""
        request, self.pending = self.pending, None
        return request

    def handled(self) -> None:
        self._handled.set()

    def secret_changed(self, name: str) -> None:
        self.changed.add(name)
        self.wake.set()

    def note_node(self, request: Any) -> None:
        if request.HasField("node") and not self.info.node_id:
            self.info.node_id = request.node.id[:200]
            self.info.cluster = request.node.cluster[:200]

    def set_watched(self, names: Iterable[str]) -> None:
        wanted = set(names)
        for name in self.watched - wanted:
            self.service.store.unwatch(name, self)
        for name in wanted - self.watched:
            self.service.store.watch(name, self)
        self.watched = wanted
        self.info.names = frozenset(wanted)

    def close(self) -> None:
        self.set_watched(())

    async def on_request(self, request: Any) -> list[Any]:
        raise NotImplementedError

    def on_changed(self) -> list[Any]:
        raise NotImplementedError


class _SotwStream(_Stream):
    api = "sotw"

    def __init__(self, service: SecretDiscoveryService) -> None:
        super().__init__(service)
        self.state = SotwState()

    async def on_request(self, request: Any) -> list[Any]:
        self.note_node(request)
        self.service._check_request(request.type_url, request.resource_names, allow_empty=False)
        error = request.error_detail.message if request.HasField("error_detail") else None
        decision = self.state.on_request(
            request.response_nonce, request.resource_names, request.version_info, error
        )
        self.service._note_answer(self, decision.verdict, decision.error)
        if decision.verdict is Verdict.ACK and self.state.acked_version is not None:
            self.info.acked = dict.fromkeys(self.state.names, self.state.acked_version)
        if not decision.respond:
            return []
        # Every wanted name must exist before anything is watched or sent.
        secrets = [await self.service._obtain(n) for n in sorted(self.state.names)]
        self.set_watched(self.state.names)
        return [self._response(secrets)]

    def on_changed(self) -> list[Any]:
        self.changed.clear()
        secrets = [self.service.store.get(n) for n in sorted(self.state.names)]
        present = [s for s in secrets if s is not None]
        if not self.state.needs(_combined_version(present)):
            return []
        return [self._response(present)]

    def _response(self, secrets: list[StoredSecret]) -> Any:
        version = _combined_version(secrets)
        nonce = self.state.sending(version)
        self.service.metrics.api(self.api).pushes.inc(len(secrets))
        return discovery_pb2.DiscoveryResponse(
            version_info=version,
            resources=[self.service._pack(s) for s in secrets],
            type_url=SECRET_TYPE_URL,
            nonce=nonce,
        )


class _DeltaStream(_Stream):
    api = "delta"

    def __init__(self, service: SecretDiscoveryService) -> None:
        super().__init__(service)
        self.state = DeltaState()

    async def on_request(self, request: Any) -> list[Any]:
        self.note_node(request)
        subscribe = list(request.resource_names_subscribe)
        self.service._check_request(request.type_url, subscribe, allow_empty=True)
        if not self.state.started and not subscribe:
            raise _Rejected(
                grpc.StatusCode.INVALID_ARGUMENT,
                "no_names",
                "SDS requests must name the secrets they want (wildcard is not served)",
            )
        error = request.error_detail.message if request.HasField("error_detail") else None
        for name in subscribe:  # unknown names fail before any state changes
            await self.service._obtain(name)
        decision, _ = self.state.on_request(
            request.response_nonce,
            subscribe,
            request.resource_names_unsubscribe,
            dict(request.initial_resource_versions),
            error,
        )
        self.service._note_answer(self, decision.verdict, decision.error)
        self.set_watched(self.state.subscribed)
        self.info.acked = dict(self.state.acked)
        return self._diff()

    def on_changed(self) -> list[Any]:
        self.changed.clear()
        return self._diff()

    def _diff(self) -> list[Any]:
        """One response with every subscribed secret the client lacks, if any."""
        updates: list[StoredSecret] = []
        removed: list[str] = []
        for name in sorted(self.state.subscribed):
            stored = self.service.store.get(name)
            version = stored.version if stored else None
            if not self.state.needs(name, version):
                continue
            if stored is None:
                removed.append(name)
            else:
                updates.append(stored)
        return self._respond(updates, removed) if updates or removed else []

    def _respond(self, updates: list[StoredSecret], removed: list[str]) -> list[Any]:
        versions: dict[str, str | None] = {s.name: s.version for s in updates}
        versions.update(dict.fromkeys(removed))
        nonce = self.state.sending(versions)
        self.service.metrics.api(self.api).pushes.inc(len(updates))
        return [
            discovery_pb2.DeltaDiscoveryResponse(
                system_version_info=_combined_version(updates),
                resources=[
                    discovery_pb2.Resource(
                        name=s.name, version=s.version, resource=self.service._pack(s)
                    )
                    for s in updates
                ],
                removed_resources=removed,
                type_url=SECRET_TYPE_URL,
                nonce=nonce,
            )
        ]


def _combined_version(secrets: Iterable[StoredSecret]) -> str:
    """One version for a set of secrets: the single version, or their joined versions."""
    versions = [s.version for s in secrets]
    return versions[0] if len(versions) == 1 else ".".join(versions)
