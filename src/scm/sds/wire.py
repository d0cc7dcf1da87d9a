"""The SDS service's gRPC method table, with request parsing that never raises.

grpcio's generated registration parses requests with ``FromString``: bytes that are not
a valid message raise inside grpcio, which logs a traceback and ends the call with
UNKNOWN naming a Python exception class. Here a request that does not parse becomes a
:class:`Malformed` value instead, so the service can answer INVALID_ARGUMENT with one
line and count it like any other refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2

SERVICE_NAME = "envoy.service.secret.v3.SecretDiscoveryService"


@dataclass(frozen=True)
class Malformed:
    """A request whose bytes are not a valid ``message_type`` message."""

    message_type: str

    @property
    def reason(self) -> str:
        return f"request is not a valid {self.message_type} message"


def lenient_parser(message_class: Any) -> Callable[[bytes], Any]:
    """A deserializer for ``message_class`` that returns :class:`Malformed` on bad bytes."""
    name = message_class.DESCRIPTOR.name

    def parse(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except Exception:  # DecodeError, or RecursionError on absurd nesting
            return Malformed(name)

    return parse


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())


def sds_method_handlers(servicer: Any) -> grpc.GenericRpcHandler:
    """The three SDS RPCs of ``servicer`` (StreamSecrets, DeltaSecrets, FetchSecrets)."""
    request = lenient_parser(discovery_pb2.DiscoveryRequest)
    delta = lenient_parser(discovery_pb2.DeltaDiscoveryRequest)
    return grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "StreamSecrets": grpc.stream_stream_rpc_method_handler(
                servicer.StreamSecrets, request, _serialize
            ),
            "DeltaSecrets": grpc.stream_stream_rpc_method_handler(
                servicer.DeltaSecrets, delta, _serialize
            ),
            # unary on the wire; unary-stream here so the servicer writes its one
            # response itself (see SecretDiscoveryService.FetchSecrets)
            "FetchSecrets": grpc.unary_stream_rpc_method_handler(
                servicer.FetchSecrets, request, _serialize
            ),
        },
    )
