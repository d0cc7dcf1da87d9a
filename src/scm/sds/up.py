"""``scm up``: the SDS server, the local CA and a real Envoy, running together.

Everything it keeps (the embedded token, the local CA, the records, the socket, Envoy's
files) lives under ``<state dir>/up/``, apart from a production ``scm sds serve`` using
the same state directory. Starts, in this order (Envoy's reconnect backoff would
otherwise delay readiness): the embedded SoftHSM token, the local CA (created there on
first use), the SDS server with issuance, its HTTP monitor, then Envoy with a TLS
listener whose certificate (``default``) and trust bundle (``ROOTCA``) come over SDS. It waits until
Envoy serves the issued certificate, says what runs and how to try it, and runs until
SIGINT or SIGTERM; then it stops Envoy and the server and removes the socket.

In hsm key mode the key stays in the token and the Secret names it for a private key
provider. Stock Envoy has none compiled in, so it NACKs the Secret; ``scm up`` shows the
Secret (PINs redacted) and Envoy's reason instead of a working listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import ssl
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from google.protobuf import json_format

from scm.config import Settings
from scm.errors import UnavailableError
from scm.keys import PIN_ENV, Pkcs11Keystore, open_keystore
from scm.pki import CANotFoundError, LocalCA, WorkloadIdentity
from scm.pki.configured import load_local_ca
from scm.pki.local_ca import CASettings
from scm.sds.assembly import SdsOverrides, build_plan, running_plan
from scm.sds.credentials import DEFAULT, Credential
from scm.sds.daemon import Running, on_stop_signal
from scm.sds.issuer import CertificateIssuer
from scm.sds.issuing import build_issuer
from scm.sds.keyprovider import Pins
from scm.sds.leafkeys import HSM
from scm.sds.listeners import port_lock_dir
from scm.sds.proxy import EnvoyProcess, bootstrap, hello_filters, sds_tls_socket
from scm.sds.render import SecretRenderer
from scm.sds.store import SecretStore
from scm.statelock import ServingLock

T = TypeVar("T")

READY_TIMEOUT_S = 60.0
HELLO = "Hello from Envoy: this TLS connection used a certificate scm issued over SDS.\n"
REDACTED = "<redacted>"
UP_DIR = "up"


@dataclass(frozen=True)
class UpOptions:
    key_mode: str = "software"
    port: int = 10443
    http: tuple[str, int] = ("127.0.0.1", 0)
    cert_ttl: str = "24h"
    check: bool = False  # stop once Envoy is ready (for CI), instead of running on


def run_up(settings: Settings, options: UpOptions, out: TextIO) -> None:
    """Run everything until a stop signal (or, with ``check``, until it is ready).

    Only one ``scm up`` serves a given port: the second refuses at once, naming the
    first one's pid. All state is the demo's own (:func:`demo_settings`).
    """
    port_lock = None
    if options.port != 0:
        port_lock = ServingLock.for_port(port_lock_dir(), "127.0.0.1", options.port)
        port_lock.acquire()
    try:
        demo = demo_settings(settings)
        workdir = demo.state_dir
        workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        keystore = open_keystore(demo)
        try:
            ca = _local_ca(demo, keystore)
            issuer = build_issuer(demo, keystore, ca, options.key_mode, options.cert_ttl)
            if not issuer.identity.dns_names:
                # so that `curl https://localhost:PORT` verifies the host name too
                issuer.identity = replace(issuer.identity, dns_names=("localhost",))
            asyncio.run(_until_signal(_serve(demo, options, ca, issuer, workdir, out)))
        finally:
            keystore.close()
    finally:
        if port_lock is not None:
            port_lock.release()


def demo_settings(settings: Settings) -> Settings:
    """The settings ``scm up`` runs with: everything under ``<state dir>/up/``.

    ``scm up`` is a demo and must never touch what a production ``scm sds serve`` on the
    same state directory serves: it gets its own embedded token, local CA and records
    there, whatever ``[keys]`` (another module, token or PIN) says.
    """
    environ = {
        name: value
        for name, value in settings.environ.items()
        if not name.startswith("SCM_KEYS_") and name != PIN_ENV
    }
    tables = {name: table for name, table in settings.tables.items() if name != "keys"}
    return dataclasses.replace(
        settings, state_dir=settings.state_dir / UP_DIR, tables=tables, environ=environ
    )


async def _until_signal(body: Coroutine[object, object, None]) -> None:
    """Run ``body``; SIGINT or SIGTERM cancels it, so its cleanup runs, and returns."""
    task = asyncio.ensure_future(body)
    with on_stop_signal(task.cancel), contextlib.suppress(asyncio.CancelledError):
        await task


async def _serve(
    settings: Settings,
    options: UpOptions,
    ca: LocalCA,
    issuer: CertificateIssuer,
    workdir: Path,
    out: TextIO,
) -> None:
    socket_path = workdir / "sds.sock"
    # only this socket: none of [sds]'s production listeners, groups or allow-lists
    overrides = SdsOverrides(socket=socket_path, key_mode=options.key_mode, only_given=True)
    plan = build_plan(settings, overrides, issuer)
    plan.monitor = options.http
    renderer, store = plan.renderer, plan.store
    async with running_plan(plan) as run:
        config = bootstrap(
            "scm-up",
            socket_path,
            options.port,
            hello_filters(HELLO),
            sds_tls_socket("GRPC", require_client_certificate=False),
        )
        envoy = EnvoyProcess(workdir, config, log_level="warning")
        try:
            summary = _Summary(settings, options, ca, issuer, run, envoy, socket_path)
            if options.key_mode == HSM:
                nack = await _poll(lambda: _nack_of_default(run), envoy, "Envoy's answer")
                summary.hsm(renderer, store, nack, out)
            else:
                port = await _poll(envoy.listener_port, envoy, "Envoy's TLS listener")
                leaf = await _poll(lambda: _served_leaf(port, ca), envoy, "the certificate")
                summary.software(port, leaf, out)
            if not options.check:
                summary.how_to_stop(out)
                await asyncio.Event().wait()
        finally:
            out.write("scm up: stopping Envoy and the SDS server\n")
            out.flush()
            envoy.stop()


def _local_ca(settings: Settings, keystore: Pkcs11Keystore) -> LocalCA:
    try:
        ca = load_local_ca(settings, keystore)
    except CANotFoundError:
        ca_settings = settings.section("ca", CASettings)
        LocalCA.init(
            settings.state_dir, keystore, ca_settings.trust_domain, key_label=ca_settings.key_label
        )
        ca = load_local_ca(settings, keystore)
    if not ca.policy.dns_suffixes:
        # The demo serves https://localhost: its own CA signs that name and no other.
        ca.policy = replace(ca.policy, dns_suffixes=("localhost",))
    return ca


async def _poll(check: Callable[[], T | None], envoy: EnvoyProcess, what: str) -> T:
    """Poll ``check`` until it gives a value; fail if Envoy exits or it takes too long."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT_S
    while loop.time() < deadline:
        envoy.check_running()
        with contextlib.suppress(OSError, ValueError):
            result = await asyncio.to_thread(check)
            if result:
                return result
        await asyncio.sleep(0.1)
    raise UnavailableError(f"timed out waiting for {what}; Envoy's log: {envoy.log_path}")


def _served_leaf(port: int, ca: LocalCA) -> x509.Certificate | None:
    """The certificate Envoy serves on ``port``, verified against the CA (host localhost)."""
    bundle = ca.certificate.public_bytes(serialization.Encoding.PEM).decode()
    context = ssl.create_default_context(cadata=bundle)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=2) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der) if der else None


def record_chain(value: object) -> tuple[x509.Certificate, ...]:
    return value.chain if isinstance(value, Credential) else ()


def _nack_of_default(run: Running) -> str | None:
    for entry in run.server.stream_entries():  # scm up serves from one process
        if DEFAULT in entry["names"] and entry["nacks"]:
            return str(entry["last_nack"])
    return None


class _Summary:
    """What ``scm up`` prints: what runs, how to try it, how to stop it."""

    def __init__(
        self,
        settings: Settings,
        options: UpOptions,
        ca: LocalCA,
        issuer: CertificateIssuer,
        run: Running,
        envoy: EnvoyProcess,
        socket_path: Path,
    ) -> None:
        self.settings = settings
        self.options = options
        self.ca_pem = LocalCA.directory(settings.state_dir) / "ca.pem"
        self.identity: WorkloadIdentity = issuer.identity
        self.issuer = issuer
        self.status_url = f"http://{options.http[0]}:{run.monitor_port}/status"
        self.console_url = f"http://{options.http[0]}:{run.monitor_port}/console/"
        self.envoy = envoy
        self.socket_path = socket_path
        self.ca = ca

    def _common(self, out: TextIO) -> None:
        record = self.issuer.current
        assert record is not None
        leaf = record.chain[0]
        lines = [
            f"  SDS server    unix:{self.socket_path} (state: {self.settings.state_dir})",
            f"  local CA      {self.ca.certificate.subject.rfc4514_string()} ({self.ca_pem})",
            f"  identity      {self.identity.spiffe_id}"
            + (f", DNS {', '.join(self.identity.dns_names)}" if self.identity.dns_names else ""),
            f"  certificate   serial {leaf.serial_number:x}, valid until "
            f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC, key {record.key_label} "
            f"({'in the token' if self.options.key_mode == HSM else 'in memory, sent inline'})",
            f"  status        {self.status_url}  (also /metrics, /healthz, /readyz)",
            f"  Envoy         pid {self.envoy.pid}, admin {self.envoy.admin_url()}, "
            f"log {self.envoy.log_path}",
        ]
        out.write("\n".join(lines) + "\n")

    def software(self, port: int, leaf: x509.Certificate, out: TextIO) -> None:
        out.write(f"scm up: Envoy serves TLS on 127.0.0.1:{port} with a certificate from scm\n")
        self._common(out)
        self._try_it(
            out,
            f"  curl --cacert {self.ca_pem} https://localhost:{port}/\n"
            f"  openssl s_client -connect 127.0.0.1:{port} -CAfile {self.ca_pem} "
            "-servername localhost -verify_return_error -brief </dev/null\n",
        )

    def hsm(self, renderer: SecretRenderer, store: SecretStore, nack: str, out: TextIO) -> None:
        out.write("scm up: hsm key mode: the key stays in the SoftHSM token\n")
        self._common(out)
        stored = store.get(DEFAULT)
        assert stored is not None and renderer.key_provider is not None
        redacted = Pins(REDACTED, REDACTED)
        shown = SecretRenderer(replace(renderer.key_provider, pins=redacted))
        document = json_format.MessageToDict(shown.render(DEFAULT, stored.value))
        chain = document["tlsCertificate"]["certificateChain"]
        chain["inlineBytes"] = f"<{len(record_chain(stored.value))} certificates, PEM, base64>"
        secret = json.dumps(document, indent=2)
        out.write(
            "\nThe Secret Envoy received (PINs redacted here; the sgx provider's "
            "configuration carries them in the Secret):\n"
            f"{secret}\n"
            f"\nEnvoy rejected it (NACK): {nack}\n"
            "Stock Envoy has no private key providers compiled in. A contrib Envoy with the "
            "sgx provider\nand the SGX Crypto API Toolkit token would sign with this key "
            "without ever seeing it.\n"
        )
        self._try_it(out, "")

    def _try_it(self, out: TextIO, commands: str) -> None:
        """The commands to try, unless --check is about to stop what they would reach."""
        if self.options.check:
            out.write("\n--check: everything answered; stopping (run without --check to try it)\n")
        else:
            out.write(
                f"\nTry it:\n{commands}  curl -s {self.status_url}\n"
                f"  console: open {self.console_url} in a browser\n"
            )
        out.flush()

    def how_to_stop(self, out: TextIO) -> None:
        if sys.stdin.isatty():
            out.write("\nPress Ctrl-C to stop.\n")
        else:
            out.write(f"\nRunning until SIGINT or SIGTERM (kill -INT {os.getpid()}).\n")
        out.flush()
