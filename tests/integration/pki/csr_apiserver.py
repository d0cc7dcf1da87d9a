"""A kube-apiserver double for ``certificates.k8s.io/v1`` CertificateSigningRequests.

It serves the real REST paths over HTTPS on loopback: create (with ``generateName``),
get, list/watch (``watch=true`` with a ``metadata.name`` field selector and a
``resourceVersion`` to resume from, one JSON event per line) and delete. After a create
it plays a signer and approver as configured by ``outcome``: "issue" (Approved, then
``status.certificate`` signed by a test CA), "deny", "approve-only" (never signed) or
"ignore", "vanish" (the object is deleted before anything happens). Every request is
recorded so tests can assert what the client did.

What the real control plane enforces is enforced here too: kube-controller-manager's
signers fail a CSR for ``kubernetes.io/kube-apiserver-client`` that asks for a usage other
than digital signature, key encipherment and client auth ("SignerValidationFailure:
invalid usage for client certificate: server auth"), and one for
``kubernetes.io/kubelet-serving`` that lacks a node's subject (O=system:nodes,
CN=system:node:NAME), has no DNS or IP SAN, has URI or e-mail SANs, or asks for usages
beyond digital signature, key encipherment and server auth. ``issue`` replaces how the
signer turns a CSR into a chain (a misbehaving CA); ``legacy_expiration`` plays an API
server before 1.22, which drops ``spec.expirationSeconds`` and signs for a year.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID

from scm.pki import IssuedCertificate, LocalCA
from tests.integration.kube.apiserver import _status
from tests.tls import TlsFiles

PREFIX = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
TOKEN = "scm-sds-service-account-token"
VALID_USAGES = {"digital signature", "key encipherment", "server auth", "client auth", "signing"}
CLIENT_USAGES = {"digital signature", "key encipherment", "client auth"}
SERVING_USAGES = {"digital signature", "key encipherment", "server auth"}
LEGACY_LIFETIME_SECONDS = 365 * 24 * 3600  # kube-controller-manager's cluster-signing-duration
Issue = Callable[[x509.CertificateSigningRequest, datetime.timedelta], IssuedCertificate]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any


class CsrApiServer:
    """The CSR API of one cluster, with a signer behaving as ``outcome`` says."""

    def __init__(
        self,
        tls: TlsFiles,
        signing_ca: LocalCA,
        outcome: str = "issue",
        issue: Issue | None = None,
        legacy_expiration: bool = False,
    ) -> None:
        self.tls = tls
        self.signing_ca = signing_ca
        self.outcome = outcome
        self.issue = issue or signing_ca.issue
        self.legacy_expiration = legacy_expiration
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self._events: list[tuple[int, str, dict[str, Any]]] = []
        self._version = 100
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_post(PREFIX, self._create)
        app.router.add_get(PREFIX, self._list_or_watch)
        app.router.add_get(PREFIX + "/{name}", self._get)
        app.router.add_delete(PREFIX + "/{name}", self._delete)
        self._app = app

    async def start(self) -> str:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls.cert, self.tls.key)
        self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context).start()
        return f"https://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def paths(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests]

    # -- REST handlers --------------------------------------------------------------------

    async def _record(self, request: web.Request) -> web.Response | None:
        body = json.loads(await request.read()) if request.can_read_body else None
        self.requests.append(Recorded(request.method, request.path, dict(request.query), body))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _status(401, "Unauthorized", "Unauthorized")
        return None

    async def _create(self, request: web.Request) -> web.Response:
        if (denied := await self._record(request)) is not None:
            return denied
        obj = json.loads(json.dumps(self.requests[-1].body))  # the record stays as sent
        problem = _invalid(obj)
        if problem:
            return _status(422, "Invalid", problem)
        if self.legacy_expiration:
            obj["spec"].pop("expirationSeconds", None)  # unknown to the server: dropped
        name = obj["metadata"].get("name") or obj["metadata"]["generateName"] + secrets.token_hex(3)
        obj["metadata"] = {"name": name, "uid": secrets.token_hex(8)}
        obj["status"] = {}
        await self._store("ADDED", obj)
        asyncio.get_running_loop().create_task(self._act(name))
        return web.json_response(obj, status=201)

    async def _get(self, request: web.Request) -> web.Response:
        if (denied := await self._record(request)) is not None:
            return denied
        obj = self.objects.get(request.match_info["name"])
        if obj is None:
            return _status(404, "NotFound", "not found")
        return web.json_response(obj)

    async def _delete(self, request: web.Request) -> web.Response:
        if (denied := await self._record(request)) is not None:
            return denied
        obj = self.objects.pop(request.match_info["name"], None)
        if obj is None:
            return _status(404, "NotFound", "not found")
        await self._store("DELETED", obj, keep=False)
        return web.json_response(obj)

    async def _list_or_watch(self, request: web.Request) -> web.StreamResponse:
        if (denied := await self._record(request)) is not None:
            return denied
        if request.query.get("watch") != "true":
            return _status(405, "MethodNotAllowed", "only watches are served")
        selector = request.query.get("fieldSelector", "")
        wanted = selector.removeprefix("metadata.name=") if selector else None
        since = int(request.query.get("resourceVersion") or 0)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError):  # the client ended its watch
            await self._stream(response, wanted, since)
        return response

    async def _stream(self, response: web.StreamResponse, wanted: str | None, seen: int) -> None:
        while True:
            async with self._changed:
                await self._changed.wait_for(partial(self._has_events_after, seen))
                events = [e for e in self._events if e[0] > seen]
            for version, kind, obj in events:
                seen = version
                if wanted is None or obj["metadata"]["name"] == wanted:
                    line = json.dumps({"type": kind, "object": obj}) + "\n"
                    await response.write(line.encode())

    def _has_events_after(self, version: int) -> bool:
        return bool(self._events) and self._events[-1][0] > version

    # -- the signer -----------------------------------------------------------------------

    async def _act(self, name: str) -> None:
        await asyncio.sleep(0.01)  # as a controller would, after the create returned
        if self.outcome == "vanish":
            obj = self.objects.pop(name, None)
            if obj is not None:
                await self._store("DELETED", obj, keep=False)
            return
        if self.outcome in ("issue", "approve-only"):
            await self._condition(name, "Approved", "AutoApproved", "approved by the test")
        elif self.outcome == "deny":
            await self._condition(name, "Denied", "PolicyDenied", "SAN not allowed")
        if self.outcome == "issue" and name in self.objects:
            obj = self.objects[name]
            csr = x509.load_pem_x509_csr(base64.b64decode(obj["spec"]["request"]))
            failure = signer_failure(obj["spec"], csr)
            if failure is not None:
                await self._condition(name, "Failed", "SignerValidationFailure", failure)
                return
            seconds = obj["spec"].get("expirationSeconds", LEGACY_LIFETIME_SECONDS)
            issued = self.issue(csr, datetime.timedelta(seconds=seconds))
            obj["status"]["certificate"] = base64.b64encode(issued.chain_pem()).decode()
            await self._store("MODIFIED", obj)

    async def _condition(self, name: str, kind: str, reason: str, message: str) -> None:
        obj = self.objects.get(name)
        if obj is not None:
            condition = {"type": kind, "status": "True", "reason": reason, "message": message}
            obj["status"].setdefault("conditions", []).append(condition)
            await self._store("MODIFIED", obj)

    async def _store(self, kind: str, obj: dict[str, Any], keep: bool = True) -> None:
        async with self._changed:
            self._version += 1
            obj["metadata"]["resourceVersion"] = str(self._version)
            if keep:
                self.objects[obj["metadata"]["name"]] = obj
            self._events.append((self._version, kind, json.loads(json.dumps(obj))))
            self._changed.notify_all()


def signer_failure(spec: dict[str, Any], csr: x509.CertificateSigningRequest) -> str | None:
    """Why kube-controller-manager's signer for ``spec.signerName`` fails the CSR, or None."""
    usages = set(spec.get("usages", []))
    signer = spec["signerName"]
    if signer == "kubernetes.io/kube-apiserver-client":
        if extra := sorted(usages - CLIENT_USAGES):
            return f"invalid usage for client certificate: {extra[0]}"
        if "client auth" not in usages:
            return "missing required usage for client certificate: client auth"
    if signer == "kubernetes.io/kubelet-serving":
        return _kubelet_serving_failure(usages, csr)
    if signer == "kubernetes.io/legacy-unknown":
        return "the legacy-unknown signer is not signed by kube-controller-manager"
    return None


def _kubelet_serving_failure(usages: set[str], csr: x509.CertificateSigningRequest) -> str | None:
    if extra := sorted(usages - SERVING_USAGES):
        return f"invalid usage for kubelet serving certificate: {extra[0]}"
    organizations = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    names = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if organizations != ["system:nodes"]:
        return "subject organization is not system:nodes"
    if len(names) != 1 or not str(names[0]).startswith("system:node:"):
        return 'subject common name does not begin with "system:node:"'
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = x509.SubjectAlternativeName([])
    if sans.get_values_for_type(x509.UniformResourceIdentifier):
        return "URI subjectAltNames are not allowed"
    if sans.get_values_for_type(x509.RFC822Name):
        return "email subjectAltNames are not allowed"
    if not sans.get_values_for_type(x509.DNSName) and not sans.get_values_for_type(x509.IPAddress):
        return "DNS or IP subjectAltName is required"
    return None


def _invalid(obj: Any) -> str | None:
    """What kube-apiserver's validation would reject in a CSR object, or None."""
    if obj.get("apiVersion") != "certificates.k8s.io/v1" or obj.get("kind") != (
        "CertificateSigningRequest"
    ):
        return "wrong apiVersion or kind"
    spec = obj.get("spec", {})
    if not spec.get("signerName"):
        return "spec.signerName: Required value"
    try:
        x509.load_pem_x509_csr(base64.b64decode(spec.get("request", ""), validate=True))
    except ValueError:
        return "spec.request: Invalid value: not a PEM CERTIFICATE REQUEST"
    if spec.get("expirationSeconds", 600) < 600:
        return "spec.expirationSeconds: Invalid value: may not specify a duration less than 600"
    if not set(spec.get("usages", [])) <= VALID_USAGES:
        return "spec.usages: Unsupported value"
    return None
