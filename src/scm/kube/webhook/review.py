"""AdmissionReview v1: from the request kube-apiserver sends to the response it expects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec

from scm.errors import InputError
from scm.kube.webhook.mutation import PodRejected, pod_patch
from scm.kube.webhook.schema import (
    MalformedBody,
    MalformedPod,
    RawRequest,
    RawReview,
    Request,
    Review,
    decode_review,
    pod_of,
)

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"

_encode = msgspec.json.Encoder().encode
# The envelopes decode_review returns: the pod decoded with the review, or left as JSON text.
_REVIEWS = (Review, RawReview)
_REQUESTS = (Request, RawRequest)


class BadReview(InputError):
    """The body is not an AdmissionReview v1 request: answered with HTTP 400."""


class Status(msgspec.Struct, gc=False):
    """Why a review was denied, as the API server relays it to the client."""

    code: int
    reason: str
    message: str


class Response(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    """The review's verdict: the request's uid, allowed or not, and the patch if any."""

    uid: str
    allowed: bool
    patch_type: str | None = None
    # The JSON patch as JSON bytes: msgspec writes bytes as base64, as the API expects.
    patch: bytes | None = None
    status: Status | None = None


class ReviewResponse(msgspec.Struct, rename="camel", kw_only=True, gc=False):
    """The AdmissionReview answered (encoded in one pass, base64 included)."""

    api_version: str = API_VERSION
    kind: str = KIND
    response: Response


class ReviewResult(NamedTuple):
    """The response and how it went: patched, unchanged or denied."""

    response: ReviewResponse
    outcome: str

    @property
    def document(self) -> dict[str, Any]:
        """The response as plain JSON types (the patch as base64 text)."""
        document: dict[str, Any] = msgspec.to_builtins(self.response)
        return document


def review(body: bytes) -> ReviewResult:
    """Answer one AdmissionReview; raises BadReview when there is no review to answer."""
    try:
        document = decode_review(body)
    except MalformedBody as exc:
        raise BadReview(str(exc)) from None
    if not isinstance(document, _REVIEWS):
        raise BadReview("the body is not a JSON object")
    if document.api_version != API_VERSION or document.kind != KIND:
        raise BadReview(f"expected apiVersion {API_VERSION} and kind {KIND}")
    request = document.request
    if not isinstance(request, _REQUESTS) or not isinstance(request.uid, str):
        raise BadReview("the AdmissionReview has no request with a uid")

    uid = request.uid
    kind = request.kind
    if not isinstance(kind, dict) or (kind.get("group"), kind.get("kind")) != ("", "Pod"):
        return _denied(
            uid,
            f"this webhook mutates Pods only, not {_describe(kind)}: "
            "limit the MutatingWebhookConfiguration's rules to pods",
        )
    if request.operation != "CREATE":
        return ReviewResult(_response(uid, allowed=True), "unchanged")
    try:
        pod = pod_of(request)
        if pod is None:
            return _denied(uid, "the review carries no pod object")
        patch = pod_patch(pod)
    except (MalformedPod, PodRejected) as exc:
        return _denied(uid, str(exc))
    if not patch:
        return ReviewResult(_response(uid, allowed=True), "unchanged")
    answer = Response(uid, allowed=True, patch_type="JSONPatch", patch=_encode(patch))
    return ReviewResult(ReviewResponse(response=answer), "patched")


def answer(
    answer_review: Callable[[bytes], ReviewResult], body: bytes
) -> tuple[ReviewResult, bytes]:
    """``answer_review(body)`` and its response body, serialised where the review ran (in
    the server's worker process for large reviews: the body is as large as the work)."""
    result = answer_review(body)
    return result, _encode(result.response)


def _denied(uid: str, message: str) -> ReviewResult:
    status = Status(400, "BadRequest", message)
    denied = Response(uid, allowed=False, status=status)
    return ReviewResult(ReviewResponse(response=denied), "denied")


def _response(uid: str, allowed: bool) -> ReviewResponse:
    return ReviewResponse(response=Response(uid, allowed=allowed))


def _describe(kind: Any) -> str:
    if not isinstance(kind, dict):
        return "an object of unknown kind"
    group = kind.get("group") or "core"
    return f"{group}/{kind.get('version')} {kind.get('kind')}"
