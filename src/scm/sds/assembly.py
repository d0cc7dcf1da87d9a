"""Settings plus command-line overrides to a server ready to run: the one SDS builder.

``scm sds serve`` and ``scm up`` both describe what they want as :class:`SdsOverrides`
(None: take the ``[sds]`` setting) and get an :class:`SdsPlan`: the store with its
static secrets, the issuer, the renderer and the server options. :func:`running_plan`
then starts it (server, monitor, renewal) and stops all of it on exit or on a failed
start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from scm.addresses import parse_host_port
from scm.config import Settings
from scm.errors import ConfigError, InputError, NotFoundError
from scm.keys import Pkcs11Keystore, open_keystore
from scm.pki import configured_ca
from scm.sds.admission import AdmissionLimits
from scm.sds.credentials import DEFAULT, ROOTCA, SecretValue
from scm.sds.daemon import (
    Running,
    SdsSettings,
    on_stop_signal,
    running,
)
from scm.sds.gcpolicy import settle_heap
from scm.sds.issuer import CertificateIssuer
from scm.sds.issuing import build_issuer, embedded_token_pins
from scm.sds.keyprovider import KeyProviderConfig, Pins, load_provider_config
from scm.sds.leafkeys import HSM
from scm.sds.listeners import TlsListener, UnixListener
from scm.sds.loader import (
    load_hsm_credential,
    load_software_credential,
    load_trust_bundle,
    parse_spec,
)
from scm.sds.render import SecretRenderer
from scm.sds.renewal import Backoff
from scm.sds.server import ServerOptions
from scm.sds.service import Limits
from scm.sds.store import SecretStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SdsOverrides:
    """What the command line says; None (or empty) means the ``[sds]`` setting."""

    socket: Path | None = None
    gateway_socket: Path | None = None
    socket_group: str | None = None
    allowed_uids: tuple[int, ...] = ()
    tcp: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    http: str | None = None
    credentials: tuple[str, ...] = ()  # NAME=CERT.pem,KEY.pem
    hsm_credentials: tuple[str, ...] = ()  # NAME=CERT.pem,KEY_LABEL
    trust_bundle: Path | None = None
    issue: bool = True
    key_mode: str | None = None
    cert_ttl: str | None = None
    token_label: str | None = None
    provider_config: Path | None = None
    pin_source: str | None = None
    user_pin_file: Path | None = None
    so_pin_file: Path | None = None
    workers: int | None = None
    # Only the listeners given here: no [sds] gateway socket, group, allow-list or TCP
    # (``scm up`` must never bind a production server's addresses).
    only_given: bool = False


@dataclass
class SdsPlan:
    """Everything a server needs, built but not started."""

    store: SecretStore
    renderer: SecretRenderer
    options: ServerOptions
    monitor: tuple[str, int] | None
    issuer: CertificateIssuer | None
    key_mode: str
    keystore: Pkcs11Keystore | None = field(default=None, repr=False)

    def describe(self) -> str:
        """What is served where, for the start-up line."""
        names = ", ".join(stored.name for stored in self.store)
        if self.issuer is not None:
            issued = f"{DEFAULT} issued in {self.key_mode} key mode"
            names = ", ".join(filter(None, [names, issued]))
        return f"{names} on {', '.join(str(u.path) for u in self.options.unix)}"

    def close(self) -> None:
        if self.keystore is not None:
            self.keystore.close()
            self.keystore = None


def build_plan(
    settings: Settings, overrides: SdsOverrides, issuer: CertificateIssuer | None = None
) -> SdsPlan:
    """The server ``settings`` and ``overrides`` describe.

    With ``issuer`` (``scm up`` builds its own), that issuer serves ``default``; else,
    with ``overrides.issue``, one is built from the configured CA.
    """
    sds = settings.section("sds", SdsSettings)
    mode = overrides.key_mode or sds.key_mode
    static = _static_secrets(overrides, overrides.token_label or sds.token_label)
    if not static and not overrides.issue and issuer is None:
        raise InputError("nothing to serve: give --credential, --hsm-credential or --trust-bundle")
    keystore = None
    try:
        if issuer is None and overrides.issue:
            keystore = open_keystore(settings)
            ca = configured_ca(settings, keystore)
            issuer = build_issuer(settings, keystore, ca, mode, overrides.cert_ttl or sds.cert_ttl)
        store = SecretStore(issuer)
        for name, value in static.items():
            store.put(name, value)
        renderer = SecretRenderer()
        if overrides.hsm_credentials or (issuer is not None and mode == HSM):
            renderer = SecretRenderer(_key_provider(settings, sds, overrides))
        http = overrides.http or (None if overrides.only_given else sds.http)
        return SdsPlan(
            store=store,
            renderer=renderer,
            options=server_options(settings, sds, overrides),
            monitor=parse_host_port(http, "--http") if http else None,
            issuer=issuer,
            key_mode=mode,
            keystore=keystore,
        )
    except BaseException:
        if keystore is not None:
            keystore.close()
        raise


def server_options(settings: Settings, sds: SdsSettings, overrides: SdsOverrides) -> ServerOptions:
    """Listeners and limits from ``[sds]`` and the command line."""
    if overrides.only_given:
        sds = replace(sds, socket_group=None, gateway_socket=None, allowed_uids=())
    group = overrides.socket_group or sds.socket_group
    workload = overrides.socket or sds.socket or settings.state_dir / "sds.sock"
    unix = [UnixListener(workload, group)]
    gateway = overrides.gateway_socket or sds.gateway_socket
    if gateway:
        unix.append(UnixListener(gateway, group))
    uids = overrides.allowed_uids or sds.allowed_uids
    workers = overrides.workers or (1 if overrides.only_given else sds.workers)
    if workers < 1:
        raise ConfigError(f"[sds] workers must be at least 1, not {workers}")
    return ServerOptions(
        unix=unix,
        tls=_tls_listener(overrides),
        limits=Limits(max_streams=sds.max_streams),
        max_message_bytes=sds.max_message_bytes,
        admission=AdmissionLimits(
            allowed_uids=frozenset(uids) if uids else None,
            max_connections=sds.max_connections,
            max_connections_per_uid=sds.max_connections_per_uid,
        ),
        max_streams_per_connection=sds.max_streams_per_connection,
        descriptor_reserve=sds.descriptor_reserve,
        workers=workers,
    )


@contextlib.asynccontextmanager
async def running_plan(plan: SdsPlan, backoff: Backoff | None = None) -> AsyncIterator[Running]:
    """Start ``plan`` (server, monitor, renewal); everything is stopped on exit."""
    async with running(
        plan.store, plan.renderer, plan.options, plan.monitor, plan.issuer, backoff
    ) as run:
        yield run


async def serve_plan_until_stopped(
    plan: SdsPlan, announce: Callable[[str], None] | None = None
) -> None:
    """Serve ``plan`` until SIGINT or SIGTERM; everything started here is stopped here.

    ``announce`` gets the start-up line once everything listens (never before). The signal
    handlers are in place before anything starts, so a SIGTERM that arrives while the
    server is starting still ends it cleanly (exit 0, socket removed).
    """
    stop = asyncio.Event()
    with on_stop_signal(stop.set):
        async with running_plan(plan):
            settle_heap()
            log.info("SDS serving %s", plan.describe())
            if announce is not None:
                announce(plan.describe())
            await stop.wait()


def _static_secrets(overrides: SdsOverrides, token_label: str) -> dict[str, SecretValue]:
    static: dict[str, SecretValue] = {}
    if overrides.trust_bundle:
        static[ROOTCA] = load_trust_bundle(overrides.trust_bundle)
    for spec in overrides.credentials:
        name, cert, key = parse_spec(spec, "--credential")
        static[name] = load_software_credential(Path(cert), Path(key))
    for spec in overrides.hsm_credentials:
        name, cert, label = parse_spec(spec, "--hsm-credential")
        static[name] = load_hsm_credential(Path(cert), label, token_label)
    return static


def _key_provider(
    settings: Settings, sds: SdsSettings, overrides: SdsOverrides
) -> KeyProviderConfig:
    pin_source = overrides.pin_source or sds.pin_source
    user_pin_file = overrides.user_pin_file or sds.user_pin_file
    so_pin_file = overrides.so_pin_file or sds.so_pin_file
    pins: Pins | None = None
    if pin_source == "secret" and user_pin_file:
        pins = Pins(_read_pin(user_pin_file), _read_pin(so_pin_file) if so_pin_file else "")
    elif pin_source == "secret":
        pins = embedded_token_pins(settings)
    provider_config = overrides.provider_config or sds.provider_config
    if provider_config:
        return load_provider_config(provider_config, pin_source, pins)
    return KeyProviderConfig(sgx_library=sds.sgx_library, pin_source=pin_source, pins=pins)


def _read_pin(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise NotFoundError(f"PIN file {path} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read PIN file {path}: {exc.strerror}") from None


def _tls_listener(overrides: SdsOverrides) -> list[TlsListener]:
    if overrides.tcp is None:
        return []
    cert, key, client_ca = overrides.tls_cert, overrides.tls_key, overrides.tls_client_ca
    if not (cert and key and client_ca):
        raise ConfigError("--tcp needs --tls-cert, --tls-key and --tls-client-ca (mutual TLS)")
    host, port = parse_host_port(overrides.tcp, "--tcp")
    return [TlsListener(host, port, cert, key, client_ca)]
