"""Envoy private key provider configuration for keys that stay in a token.

Envoy's ``private_key_provider`` names a provider compiled into Envoy (``sgx``,
``cryptomb``, ``qat``) and carries its configuration as a ``typed_config`` Any. The
Python Envoy API (xds-protos) does not ship the contrib providers' messages, so the
configuration is sent as an ``xds.type.v3.TypedStruct``: the provider's type URL plus
its fields as a Struct. Envoy's providers read ``typed_config`` through
``translateOpaqueConfig``, which turns a TypedStruct into the named message field by
field (as it would from JSON), so the provider sees exactly the message it expects.

The configuration is a template: a JSON object whose string values may be one of the
placeholders below, replaced per credential. The default template is the SGX
provider's ``SgxPrivateKeyMethodConfig``. That message holds the token PINs as plain
strings, so with it the PINs travel inside every Secret (over the local SDS socket);
``pin_source="envoy"`` refuses templates that would do so, for providers that can read
their PIN on the Envoy side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import any_pb2, struct_pb2
from xds.type.v3 import typed_struct_pb2

from scm.errors import ConfigError, InputError
from scm.sds.credentials import HsmKey

TYPED_STRUCT_URL = "type.googleapis.com/xds.type.v3.TypedStruct"
SGX_CONFIG_URL = (
    "type.googleapis.com/"
    "envoy.extensions.private_key_providers.sgx.v3alpha.SgxPrivateKeyMethodConfig"
)
DEFAULT_SGX_LIBRARY = "/usr/local/lib/libp11sgx.so"

SGX_TEMPLATE: Mapping[str, Any] = {
    "sgx_library": "{sgx_library}",
    "key_label": "{key_label}",
    "usr_pin": "{usr_pin}",
    "so_pin": "{so_pin}",
    "token_label": "{token_label}",
    "key_type": "{key_type}",
}

PIN_PLACEHOLDERS = frozenset({"{usr_pin}", "{so_pin}"})
PLACEHOLDERS = frozenset({"{sgx_library}", "{key_label}", "{token_label}", "{key_type}"})
PIN_SOURCES = ("secret", "envoy")


@dataclass(frozen=True)
class Pins:
    """The token's user and security officer PINs; never printed."""

    user: str = field(repr=False)
    so: str = field(repr=False, default="")


@dataclass(frozen=True)
class KeyProviderConfig:
    """Which provider Envoy should sign with, and its configuration template."""

    provider_name: str = "sgx"
    type_url: str = SGX_CONFIG_URL
    template: Mapping[str, Any] = field(default_factory=lambda: dict(SGX_TEMPLATE))
    sgx_library: str = DEFAULT_SGX_LIBRARY
    pin_source: str = "secret"
    pins: Pins | None = None

    def __post_init__(self) -> None:
        if self.pin_source not in PIN_SOURCES:
            raise ConfigError(
                f"pin source {self.pin_source!r} is not one of {', '.join(PIN_SOURCES)}"
            )
        uses_pins = bool(PIN_PLACEHOLDERS & set(_placeholders(self.template)))
        if uses_pins and self.pin_source == "envoy":
            raise ConfigError(
                f"the {self.provider_name} provider configuration puts the token PIN into "
                "the Secret; use --pin-source secret or a template that reads it on Envoy's side"
            )
        if uses_pins and self.pins is None:
            raise ConfigError(
                f"the {self.provider_name} provider configuration needs the token PINs "
                "(give a PIN file)"
            )
        unknown = set(_placeholders(self.template)) - PLACEHOLDERS - PIN_PLACEHOLDERS
        if unknown:
            raise ConfigError(f"unknown placeholder {sorted(unknown)[0]} in provider template")

    def typed_config(self, key: HsmKey) -> any_pb2.Any:
        """The provider's configuration for ``key``, packed as a TypedStruct Any."""
        values = {
            "{sgx_library}": self.sgx_library,
            "{key_label}": key.key_label,
            "{token_label}": key.token_label,
            "{key_type}": provider_key_family(key.key_type),
            "{usr_pin}": self.pins.user if self.pins else "",
            "{so_pin}": self.pins.so if self.pins else "",
        }
        config = struct_pb2.Struct()
        config.update(_substitute(self.template, values))
        wrapper = typed_struct_pb2.TypedStruct(type_url=self.type_url, value=config)
        return any_pb2.Any(type_url=TYPED_STRUCT_URL, value=wrapper.SerializeToString())


def provider_key_family(key_type: str) -> str:
    """The key family providers name ("ecdsa", "rsa") for an scm key type like "ec-p256"."""
    if key_type.startswith("ec"):
        return "ecdsa"
    if key_type.startswith("rsa"):
        return "rsa"
    raise InputError(f"key type {key_type!r} has no private key provider family")


def load_provider_config(path: Path, pin_source: str, pins: Pins | None) -> KeyProviderConfig:
    """Read ``{"provider_name": ..., "type_url": ..., "config": {...}}`` from a JSON file."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"provider configuration {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read provider configuration {path}: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
        raise ConfigError(f"{path}: expected an object with provider_name, type_url and config")
    try:
        return KeyProviderConfig(
            provider_name=str(document["provider_name"]),
            type_url=str(document["type_url"]),
            template=document["config"],
            sgx_library=str(document.get("sgx_library", DEFAULT_SGX_LIBRARY)),
            pin_source=pin_source,
            pins=pins,
        )
    except KeyError as exc:
        raise ConfigError(f"{path}: missing {exc.args[0]}") from None


def _placeholders(template: Any) -> list[str]:
    if isinstance(template, Mapping):
        return [p for v in template.values() for p in _placeholders(v)]
    if isinstance(template, list):
        return [p for v in template for p in _placeholders(v)]
    if isinstance(template, str) and template.startswith("{") and template.endswith("}"):
        return [template]
    return []


def _substitute(template: Any, values: Mapping[str, str]) -> Any:
    if isinstance(template, Mapping):
        return {k: _substitute(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_substitute(v, values) for v in template]
    if isinstance(template, str) and template in values:
        return values[template]
    return template
