"""Whatever arrives at /mutate, the answer is a review response or a 400, never a crash."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scm.kube.webhook.review import BadReview, review

REVIEW = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "admission" / "pod-aesmd-sidecar.json").read_text()
)
# JSON values: no NaN or Infinity, which RFC 8259 has no numbers for (Python's json writes
# them, kube-apiserver never does, and the webhook refuses them as not JSON).
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
# Paths into the sidecar pod where a wrong type or value could trip the mutation.
PATHS = [
    ("metadata",),
    ("metadata", "annotations"),
    ("metadata", "annotations", "sgx.intel.com/quote-provider"),
    ("spec",),
    ("spec", "containers"),
    ("spec", "containers", 0),
    ("spec", "containers", 0, "name"),
    ("spec", "containers", 0, "resources"),
    ("spec", "containers", 0, "resources", "limits"),
    ("spec", "containers", 0, "resources", "limits", "sgx.intel.com/epc"),
    ("spec", "containers", 0, "resources", "requests", "sgx.intel.com/epc"),
    ("spec", "containers", 0, "env"),
    ("spec", "containers", 1, "volumeMounts"),
    ("spec", "volumes"),
    ("spec", "volumes", 0),
]


def replaced(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(json.dumps(REVIEW))
    target: Any = document["request"]["object"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return document


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PATHS), JSON)
def test_any_value_anywhere_in_the_pod_is_answered(path: tuple[str | int, ...], value: Any) -> None:
    result = review(json.dumps(replaced(path, value)).encode())
    response = result.document["response"]
    assert response["uid"] == REVIEW["request"]["uid"]
    assert result.outcome in ("patched", "unchanged", "denied")
    assert response["allowed"] == (result.outcome != "denied")


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_any_json_body_is_answered_or_rejected(value: Any) -> None:
    try:
        result = review(json.dumps(value).encode())
    except BadReview:
        return
    assert result.outcome in ("patched", "unchanged", "denied")


def test_numbers_json_does_not_have_are_refused_as_not_json() -> None:
    for number in ("NaN", "Infinity", "-Infinity"):
        body = json.dumps(REVIEW).replace('"aesmd"', number, 1).encode()
        with pytest.raises(BadReview, match="not JSON"):
            review(body)


BODY = json.dumps(REVIEW).encode()


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, len(BODY)),
    st.integers(0, 40),
    st.binary(max_size=20) | st.sampled_from([b'"', b"{", b"}", b"[", b"]", b",", b":", b"null"]),
)
def test_any_edit_of_the_bytes_is_answered_or_rejected(
    start: int, length: int, data: bytes
) -> None:
    """Bytes cut and spliced anywhere (broken JSON, bytes that are not UTF-8, repeated keys,
    wrong types): a review response or BadReview (HTTP 400), never another exception."""
    body = BODY[:start] + data + BODY[start + length :]
    try:
        result = review(body)
    except BadReview:
        return
    assert result.outcome in ("patched", "unchanged", "denied")


def test_bytes_that_are_not_utf8_are_not_json() -> None:
    with pytest.raises(BadReview, match="not JSON"):
        review(BODY[:10] + b"\x80" + BODY[10:])


def test_without_a_quote_provider_no_container_gets_provision() -> None:
    """Provision (the right to get quotes signed) goes only to the container the pod names in
    sgx.intel.com/quote-provider; a nameless container (which the API server will refuse)
    must not get it by matching the absent annotation."""
    document = copy.deepcopy(REVIEW)
    pod = document["request"]["object"]
    del pod["metadata"]["annotations"]["sgx.intel.com/quote-provider"]
    pod["spec"]["containers"].append({"image": "registry.example/helper:1"})
    result = review(json.dumps(document).encode())
    patch = json.loads(base64.b64decode(result.document["response"]["patch"]))
    assert patch  # the EPC containers are still patched
    assert not any("sgx.intel.com~1provision" in op["path"] for op in patch)
    assert not any("sgx.intel.com/provision" in json.dumps(op.get("value")) for op in patch)
