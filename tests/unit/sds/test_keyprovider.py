"""Private key provider configuration: the SGX default, templates and PINs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format
from xds.type.v3 import typed_struct_pb2

from scm.errors import ConfigError
from scm.sds import HsmKey, KeyProviderConfig, Pins
from scm.sds.keyprovider import SGX_CONFIG_URL, TYPED_STRUCT_URL, load_provider_config

KEY = HsmKey("workload-key", "scm", "ec-p256")


def unpack(config: KeyProviderConfig) -> tuple[str, dict[str, object]]:
    packed = config.typed_config(KEY)
    assert packed.type_url == TYPED_STRUCT_URL
    typed = typed_struct_pb2.TypedStruct()
    typed.ParseFromString(packed.value)
    return typed.type_url, json_format.MessageToDict(typed.value)


def test_sgx_default_fills_every_field() -> None:
    config = KeyProviderConfig(pins=Pins("1234", "5678"))
    type_url, fields = unpack(config)
    assert type_url == SGX_CONFIG_URL
    assert fields == {
        "sgx_library": "/usr/local/lib/libp11sgx.so",
        "key_label": "workload-key",
        "usr_pin": "1234",
        "so_pin": "5678",
        "token_label": "scm",
        "key_type": "ecdsa",
    }
    assert "1234" not in repr(config)


def test_pin_source_envoy_refuses_a_template_that_carries_pins() -> None:
    with pytest.raises(ConfigError, match="puts the token PIN into the Secret"):
        KeyProviderConfig(pin_source="envoy", pins=Pins("1"))
    with pytest.raises(ConfigError, match="needs the token PINs"):
        KeyProviderConfig()


def test_template_file_for_another_provider(tmp_path: Path) -> None:
    path = tmp_path / "qat.json"
    path.write_text(json.dumps({
        "provider_name": "qat",
        "type_url": "type.googleapis.com/envoy.extensions.private_key_providers.qat.v3alpha."
                    "QatPrivateKeyMethodConfig",
        "config": {"private_key": {"filename": "/keys/{key_label}.pem"}, "label": "{key_label}"},
    }))  # fmt: skip
    config = load_provider_config(path, "envoy", None)
    type_url, fields = unpack(config)
    assert type_url.endswith("QatPrivateKeyMethodConfig")
    assert fields == {"private_key": {"filename": "/keys/{key_label}.pem"}, "label": "workload-key"}
