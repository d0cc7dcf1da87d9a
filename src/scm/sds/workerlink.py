"""The private channel between an SDS server process and its worker processes.

Each worker is joined to its parent by two socket pairs made before it starts: a stream
for messages (length-prefixed pickles of plain tuples, both ways) and a datagram pair
that carries accepted Unix connections (``SCM_RIGHTS``) from the parent's gate to the
worker. Only the two processes hold either end, so the messages may carry secrets (a
software-mode key); they are never logged.

Certificates do not pickle, so secret values travel as PEM (:func:`encode_value`).
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import Any

from cryptography import x509

from scm.sds.credentials import Credential, HsmKey, InlineKey, SecretValue, TrustBundle

_LENGTH = struct.Struct("!I")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a status snapshot of many thousand streams fits

Message = tuple[Any, ...]


def encode_value(value: SecretValue | None) -> tuple[Any, ...] | None:
    """``value`` as plain data (None stays None: the secret was removed)."""
    if value is None:
        return None
    if isinstance(value, TrustBundle):
        return ("bundle", value.pem())
    key = value.key
    if isinstance(key, InlineKey):
        return ("credential", value.chain_pem(), ("inline", key.pem))
    return ("credential", value.chain_pem(), ("hsm", key.key_label, key.token_label, key.key_type))


def decode_value(data: tuple[Any, ...] | None) -> SecretValue | None:
    """The inverse of :func:`encode_value`."""
    if data is None:
        return None
    if data[0] == "bundle":
        return TrustBundle(tuple(x509.load_pem_x509_certificates(data[1])))
    chain = tuple(x509.load_pem_x509_certificates(data[1]))
    key = data[2]
    if key[0] == "inline":
        return Credential(chain, InlineKey(key[1]))
    return Credential(chain, HsmKey(key[1], key[2], key[3]))


def send(writer: asyncio.StreamWriter, message: Message) -> None:
    """Queue ``message`` on ``writer`` (synchronous: messages keep the order of calls)."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(_LENGTH.pack(len(body)) + body)


async def receive(reader: asyncio.StreamReader) -> Message | None:
    """The next message, or None when the other process has gone (EOF)."""
    try:
        header = await reader.readexactly(_LENGTH.size)
        (length,) = _LENGTH.unpack(header)
        if length > MAX_MESSAGE_BYTES:
            raise ConnectionError(f"worker message of {length} bytes")
        body = await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    message = pickle.loads(body)
    assert isinstance(message, tuple)
    return message
