"""Writes to a gRPC peer that may have left: a peer leaving is not an internal error.

grpc.aio fails a write whose peer has reset the stream or closed the connection with
``ExecuteBatchError`` (a ``grpc.aio.InternalError``). It only recognises that as the peer
leaving if it has already seen the call cancelled; a write that was waiting on the
peer's flow-control window fails first, and grpc.aio then logs it as an error raised in
core, with a traceback. gRPC core fails a batch only on a call that is over (cancelled
by the peer, past its deadline, or its connection gone), so nothing is left to tell the
peer: the handler ends as grpc.aio ends a call whose peer cancelled, with
``asyncio.CancelledError``, which grpc.aio takes as the call's ordinary end.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, NoReturn

import grpc


async def write(context: grpc.aio.ServicerContext, message: Any) -> None:
    """Send ``message``; raises ``asyncio.CancelledError`` if the peer has left."""
    try:
        await context.write(message)
    except grpc.aio.InternalError:
        raise asyncio.CancelledError("the peer left during a write") from None


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    """End the call with ``code``; raises ``asyncio.CancelledError`` if the peer has left."""
    with contextlib.suppress(grpc.aio.InternalError):
        await context.abort(code, details)  # raises AbortError once the status is sent
    raise asyncio.CancelledError("the peer left before its status was sent")
