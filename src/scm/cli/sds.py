"""``scm sds``: the Envoy SDS server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from scm.cli.context import CliContext, pass_cli
from scm.errors import ConfigError, InputError, NotFoundError
from scm.keys import open_keystore
from scm.pki import configured_ca
from scm.sds import (
    DEFAULT,
    ROOTCA,
    KeyProviderConfig,
    Pins,
    SecretRenderer,
    SecretStore,
    ServerOptions,
)
from scm.sds.credentials import SecretValue
from scm.sds.daemon import SdsSettings, parse_host_port, serve_until_stopped
from scm.sds.issuing import build_issuer, embedded_token_pins
from scm.sds.keyprovider import PIN_SOURCES, load_provider_config
from scm.sds.leafkeys import HSM, KEY_MODES
from scm.sds.listeners import TlsListener, UnixListener
from scm.sds.loader import (
    load_hsm_credential,
    load_software_credential,
    load_trust_bundle,
    parse_spec,
)
from scm.sds.service import Limits

FILE = click.Path(path_type=Path, dir_okay=False)


@click.group("sds")
def sds_group() -> None:
    """Envoy Secret Discovery Service."""


@sds_group.command("serve")
@click.option("--socket", "socket_path", type=FILE, help="Workload socket [<state_dir>/sds.sock].")
@click.option("--gateway-socket", type=FILE, help="A second socket, for a gateway.")
@click.option("--socket-group", help="Group that may connect too (sockets become 0660).")
@click.option("--allow-uid", type=int, multiple=True, help="Only these uids (SO_PEERCRED).")
@click.option("--tcp", help="Also listen on HOST:PORT with mutual TLS.")
@click.option("--tls-cert", type=FILE, help="Certificate chain of the TCP listener.")
@click.option("--tls-key", type=FILE, help="Private key of the TCP listener.")
@click.option("--tls-client-ca", type=FILE, help="CA that TCP clients' certificates chain to.")
@click.option("--http", help="Serve /healthz, /readyz, /metrics, /status on HOST:PORT.")
@click.option(
    "--credential",
    "credentials",
    multiple=True,
    metavar="NAME=CERT.pem,KEY.pem",
    help="Serve a chain with its key inline (software key mode).",
)
@click.option(
    "--hsm-credential",
    "hsm_credentials",
    multiple=True,
    metavar="NAME=CERT.pem,KEY_LABEL",
    help="Serve a chain whose key is KEY_LABEL in the token (hsm key mode).",
)
@click.option("--trust-bundle", type=FILE, help="CA certificates served as ROOTCA.")
@click.option(
    "--issue/--no-issue",
    default=True,
    help="Issue 'default' (and serve ROOTCA, imported keys) from the configured CA.",
)
@click.option(
    "--key-mode",
    type=click.Choice(KEY_MODES),
    help="Workload keys inline for stock Envoy (software) or in the token (hsm) [software].",
)
@click.option("--cert-ttl", help="Lifetime of issued certificates, e.g. 24h [sds.cert_ttl].")
@click.option("--token-label", help="Token holding --hsm-credential keys.")
@click.option("--provider-config", type=FILE, help="Key provider JSON (default: Envoy's sgx).")
@click.option("--pin-source", type=click.Choice(PIN_SOURCES), help="Where Envoy gets PINs.")
@click.option("--user-pin-file", type=FILE, help="Token user PIN, for --pin-source secret.")
@click.option("--so-pin-file", type=FILE, help="Token SO PIN, for --pin-source secret.")
@pass_cli
def serve_command(
    cli: CliContext,
    socket_path: Path | None,
    gateway_socket: Path | None,
    socket_group: str | None,
    allow_uid: tuple[int, ...],
    tcp: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_client_ca: Path | None,
    http: str | None,
    credentials: tuple[str, ...],
    hsm_credentials: tuple[str, ...],
    trust_bundle: Path | None,
    issue: bool,
    key_mode: str | None,
    cert_ttl: str | None,
    token_label: str | None,
    provider_config: Path | None,
    pin_source: str | None,
    user_pin_file: Path | None,
    so_pin_file: Path | None,
) -> None:
    """Serve Envoy its certificates over SDS: issued by the configured CA, or imported.

    With issuance (the default) the first request for 'default' generates a key, has the
    CA sign a certificate for the [sds] identity and renews it before it expires; ROOTCA
    is the CA's trust bundle, and in hsm key mode keys imported with `scm keys import`
    are served under their label.
    """
    settings = cli.settings.section("sds", SdsSettings)
    mode = key_mode or settings.key_mode
    static: dict[str, SecretValue] = {}
    if trust_bundle:
        static[ROOTCA] = load_trust_bundle(trust_bundle)
    for spec in credentials:
        name, cert, key = parse_spec(spec, "--credential")
        static[name] = load_software_credential(Path(cert), Path(key))
    token = token_label or settings.token_label
    for spec in hsm_credentials:
        name, cert, label = parse_spec(spec, "--hsm-credential")
        static[name] = load_hsm_credential(Path(cert), label, token)
    if not static and not issue:
        raise InputError("nothing to serve: give --credential, --hsm-credential or --trust-bundle")
    issuer = None
    if issue:
        keystore = open_keystore(cli.settings)
        ca = configured_ca(cli.settings, keystore)
        issuer = build_issuer(cli.settings, keystore, ca, mode, cert_ttl or settings.cert_ttl)
    store = SecretStore(issuer)
    for name, value in static.items():
        store.put(name, value)

    renderer = SecretRenderer()
    if hsm_credentials or (issuer is not None and mode == HSM):
        renderer = SecretRenderer(
            _key_provider(
                settings,
                provider_config or settings.provider_config,
                pin_source or settings.pin_source,
                user_pin_file or settings.user_pin_file,
                so_pin_file or settings.so_pin_file,
                embedded_token_pins(cli.settings),
            )
        )
    group = socket_group or settings.socket_group
    workload = socket_path or settings.socket or cli.settings.state_dir / "sds.sock"
    unix = [UnixListener(workload, group)]
    gateway = gateway_socket or settings.gateway_socket
    if gateway:
        unix.append(UnixListener(gateway, group))
    uids = allow_uid or settings.allowed_uids
    options = ServerOptions(
        unix=unix,
        tls=_tls_listener(tcp, tls_cert, tls_key, tls_client_ca),
        limits=Limits(max_streams=settings.max_streams),
        max_message_bytes=settings.max_message_bytes,
        allowed_uids=frozenset(uids) if uids else None,
    )
    http_address = http or settings.http
    monitor = parse_host_port(http_address, "--http") if http_address else None
    names = ", ".join(stored.name for stored in store)
    if issuer is not None:
        names = ", ".join(filter(None, [names, f"{DEFAULT} issued in {mode} key mode"]))
    click.echo(f"scm sds: serving {names} on {', '.join(str(u.path) for u in unix)}", err=True)
    asyncio.run(serve_until_stopped(store, renderer, options, monitor, issuer))


def _key_provider(
    settings: SdsSettings,
    provider_config: Path | None,
    pin_source: str,
    user_pin_file: Path | None,
    so_pin_file: Path | None,
    embedded_pins: Pins | None,
) -> KeyProviderConfig:
    pins = None
    if pin_source == "secret" and user_pin_file:
        pins = Pins(_read_pin(user_pin_file), _read_pin(so_pin_file) if so_pin_file else "")
    elif pin_source == "secret":
        pins = embedded_pins
    if provider_config:
        return load_provider_config(provider_config, pin_source, pins)
    return KeyProviderConfig(sgx_library=settings.sgx_library, pin_source=pin_source, pins=pins)


def _read_pin(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise NotFoundError(f"PIN file {path} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read PIN file {path}: {exc.strerror}") from None


def _tls_listener(
    tcp: str | None, cert: Path | None, key: Path | None, client_ca: Path | None
) -> list[TlsListener]:
    if tcp is None:
        return []
    if not (cert and key and client_ca):
        raise ConfigError("--tcp needs --tls-cert, --tls-key and --tls-client-ca (mutual TLS)")
    host, port = parse_host_port(tcp, "--tcp")
    return [TlsListener(host, port, cert, key, client_ca)]
