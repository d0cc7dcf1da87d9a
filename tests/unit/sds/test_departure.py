"""A write or status the peer can no longer receive ends the handler as a cancellation.

The write case runs against the real server in tests/integration/sds/test_departing_peers.
An abort whose status cannot be sent cannot be forced there (the peer would have to leave
between the request being read and the refusal, without grpc.aio cancelling the handler
first), so here a stand-in context fails the way grpc.aio's does: with the
``ExecuteBatchError`` that gRPC core's failed batch becomes.
"""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

import grpc
import pytest
from grpc._cython import cygrpc

from scm.sds import departure


class CallOver:
    """A servicer context whose call gRPC core has already ended."""

    async def write(self, message: Any) -> None:
        raise cygrpc.ExecuteBatchError('Failed "execute_batch"')

    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise cygrpc.ExecuteBatchError('Failed "execute_batch"')


class StatusSent:
    """A servicer context that sends the status: grpc.aio's abort then raises AbortError."""

    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise grpc.aio.AbortError("Locally aborted.")


def test_a_write_to_a_call_that_is_over_is_a_cancellation() -> None:
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(departure.write(CallOver(), object()))  # type: ignore[arg-type]


def test_a_status_that_cannot_be_sent_is_a_cancellation() -> None:
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(departure.abort(CallOver(), grpc.StatusCode.NOT_FOUND, "no"))  # type: ignore[arg-type]


def test_a_status_sent_ends_the_call_as_grpc_aio_expects() -> None:
    with pytest.raises(grpc.aio.AbortError):
        asyncio.run(departure.abort(StatusSent(), grpc.StatusCode.NOT_FOUND, "no"))  # type: ignore[arg-type]
