"""AdmissionReview handling as it was before Build 7 (stdlib json): the oracle for review()."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scm.errors import InputError
from tests.unit.kube.previous_mutation import PodRejected, pod_patch

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"


class BadReview(InputError):
    """The body is not an AdmissionReview v1 request: answered with HTTP 400."""


@dataclass(frozen=True)
class ReviewResult:
    """The response document and how it went: patched, unchanged or denied."""

    document: dict[str, Any]
    outcome: str


def review(body: bytes) -> ReviewResult:
    """Answer one AdmissionReview; raises BadReview when there is no review to answer."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise BadReview("the body is not JSON") from None
    if not isinstance(document, dict):
        raise BadReview("the body is not a JSON object")
    if document.get("apiVersion") != API_VERSION or document.get("kind") != KIND:
        raise BadReview(f"expected apiVersion {API_VERSION} and kind {KIND}")
    request = document.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str):
        raise BadReview("the AdmissionReview has no request with a uid")

    uid = request["uid"]
    kind = request.get("kind")
    if not isinstance(kind, dict) or (kind.get("group"), kind.get("kind")) != ("", "Pod"):
        return _denied(
            uid,
            f"this webhook mutates Pods only, not {_describe(kind)}: "
            "limit the MutatingWebhookConfiguration's rules to pods",
        )
    if request.get("operation") != "CREATE":
        return ReviewResult(_response(uid, allowed=True), "unchanged")
    pod = request.get("object")
    if not isinstance(pod, dict):
        return _denied(uid, "the review carries no pod object")
    try:
        patch = pod_patch(pod)
    except PodRejected as exc:
        return _denied(uid, str(exc))
    if not patch:
        return ReviewResult(_response(uid, allowed=True), "unchanged")
    response = _response(uid, allowed=True)
    response["response"]["patchType"] = "JSONPatch"
    response["response"]["patch"] = base64.b64encode(
        json.dumps(patch, separators=(",", ":")).encode()
    ).decode()
    return ReviewResult(response, "patched")


def answer(
    answer_review: Callable[[bytes], ReviewResult], body: bytes
) -> tuple[ReviewResult, bytes]:
    """``answer_review(body)`` and its response body, serialised where the review ran (in
    the server's worker process for large reviews: the body is as large as the work)."""
    result = answer_review(body)
    return result, json.dumps(result.document, separators=(",", ":")).encode()


def _denied(uid: str, message: str) -> ReviewResult:
    document = _response(uid, allowed=False)
    document["response"]["status"] = {"code": 400, "reason": "BadRequest", "message": message}
    return ReviewResult(document, "denied")


def _response(uid: str, allowed: bool) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "response": {"uid": uid, "allowed": allowed}}


def _describe(kind: Any) -> str:
    if not isinstance(kind, dict):
        return "an object of unknown kind"
    group = kind.get("group") or "core"
    return f"{group}/{kind.get('version')} {kind.get('kind')}"
