"""The typed, copy-free review answers every pod exactly as the dict-based one did.

The previous implementation (``previous_review``, kept unchanged as the oracle) and the
current one get the same bodies: a corpus of pods (init containers, sidecars, requests-only
EPC, NRI annotations set right or wrong, patched pods reviewed again, hostile shapes) and
pods generated at random. Their responses must be the same document: same outcome, same
denial message, same JSON patch operations in the same order.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scm.kube.webhook.review import BadReview, review
from tests.unit.kube import previous_review
from tests.unit.kube.test_review import JSON, PATHS, replaced

FIXTURES = Path(__file__).parents[2] / "fixtures" / "admission"
EPC, ENCLAVE, PROVISION = "sgx.intel.com/epc", "sgx.intel.com/enclave", "sgx.intel.com/provision"
PROVIDER = "sgx.intel.com/quote-provider"
NRI = "epc-limit.nri.io/container."


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return document


def answered(answer: Callable[[bytes], Any], body: bytes) -> tuple[str, Any]:
    """What a review function made of ``body``: its outcome and response, the patch decoded
    (its base64 text may differ in how JSON escapes characters, never in meaning)."""
    try:
        result = answer(body)
    except (BadReview, previous_review.BadReview) as exc:
        return "bad review", str(exc)
    document = json.loads(json.dumps(result.document))
    if "patch" in document["response"]:
        document["response"]["patch"] = json.loads(base64.b64decode(document["response"]["patch"]))
    return result.outcome, document


def assert_same_answer(document: Any) -> str:
    body = json.dumps(document).encode()
    now, before = answered(review, body), answered(previous_review.review, body)
    assert now == before
    return now[0]


def pod_review(edit: Callable[[dict[str, Any]], None], name: str = "pod-aesmd-sidecar.json") -> Any:
    document = load(name)
    edit(document["request"]["object"])
    return document


def container(name: Any, epc: Any = None, requests: Any = None, **extra: Any) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if epc is not None:
        resources["limits"] = {EPC: epc}
    if requests is not None:
        resources["requests"] = {EPC: requests}
    return {"name": name, "image": "registry.example/x:1", "resources": resources, **extra}


def setting(*path: str | int, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(pod: dict[str, Any]) -> None:
        target: Any = pod
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def deleting(*path: str | int) -> Callable[[dict[str, Any]], None]:
    def edit(pod: dict[str, Any]) -> None:
        target: Any = pod
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


def annotated(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return setting("metadata", "annotations", key, value=value)


def with_init(*containers: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return setting("spec", "initContainers", value=list(containers))


def patched_again(name: str) -> Any:
    """A fixture's review with its pod as the webhook patched it: reviewed a second time."""
    document = load(name)
    outcome, answer = answered(review, json.dumps(document).encode())
    assert outcome == "patched"
    document["request"]["object"] = jsonpatch.apply_patch(
        document["request"]["object"], answer["response"]["patch"]
    )
    return document


CORPUS: dict[str, Any] = {
    **{path.stem: load(path.name) for path in FIXTURES.glob("*.json")},
    "sidecar patched again": patched_again("pod-aesmd-sidecar.json"),
    "host patched again": patched_again("pod-aesmd-host.json"),
    "in-process patched again": patched_again("pod-dcap-in-process.json"),
    "init container with epc": pod_review(
        with_init({"name": "plain", "image": "busybox"}, container("seal", "128Mi")),
        "pod-aesmd-host.json",
    ),
    "sidecar init container": pod_review(
        with_init(
            container("aesmd", "16Mi", "16Mi", restartPolicy="Always"), container("i", "32Mi")
        )
    ),
    "init container as quote provider": pod_review(
        lambda pod: (
            with_init(container("quoter", "8Mi"))(pod),
            annotated(PROVIDER, "quoter")(pod),
        )
    ),
    "provider without resources": pod_review(
        lambda pod: (
            pod["spec"]["containers"].append({"name": "qe", "image": "qe"}),
            annotated(PROVIDER, "qe")(pod),
        )
    ),
    "requests-only epc": pod_review(
        setting("spec", "containers", 0, value=container("only-requests", None, "8Mi"))
    ),
    "requests-only epc in an init container": pod_review(
        with_init(container("only-requests", None, "8Mi"))
    ),
    "requests differ from limits": pod_review(
        setting("spec", "containers", 0, value=container("app", "64Mi", "32Mi"))
    ),
    "fractional epc": pod_review(setting("spec", "containers", 0, value=container("app", "0.5"))),
    "epc too large": pod_review(setting("spec", "containers", 0, value=container("app", "1e100"))),
    "epc as a JSON number": pod_review(
        setting("spec", "containers", 0, value=container("app", 1048576, 1048576))
    ),
    "negative epc": pod_review(setting("spec", "containers", 0, value=container("app", "-1Mi"))),
    "epc as a list": pod_review(setting("spec", "containers", 0, value=container("app", [1]))),
    "nri annotation wrong": pod_review(annotated(f"{NRI}app", "1")),
    "nri annotation right": pod_review(annotated(f"{NRI}app", str(32 * 2**20))),
    "epc annotation a number": pod_review(annotated("sgx.intel.com/epc", 48)),
    "container name too long": pod_review(
        setting("spec", "containers", 0, "name", value="c" * 54), "pod-aesmd-host.json"
    ),
    "container name with ~ and /": pod_review(
        setting("spec", "containers", 0, "name", value="a~b/c"), "pod-aesmd-host.json"
    ),
    "sgx container without a name": pod_review(deleting("spec", "containers", 0, "name")),
    "duplicate container names": pod_review(
        setting("spec", "containers", 1, "name", value="app"), "pod-aesmd-sidecar.json"
    ),
    "provider names a missing container": pod_review(annotated(PROVIDER, "qe")),
    "provider empty": pod_review(annotated(PROVIDER, "")),
    "provider a number": pod_review(annotated(PROVIDER, 7)),
    "no metadata": pod_review(deleting("metadata")),
    "no annotations": pod_review(deleting("metadata", "annotations"), "pod-dcap-in-process.json"),
    "null annotations": pod_review(setting("metadata", "annotations", value=None)),
    "null resources on the sidecar": pod_review(
        setting("spec", "containers", 1, "resources", value=None)
    ),
    "null volumes": pod_review(setting("spec", "volumes", value=None)),
    "no volumes": pod_review(deleting("spec", "volumes")),
    "aesmd volume already there": pod_review(
        setting("spec", "volumes", value=[{"name": "aesmd-socket", "emptyDir": {}}])
    ),
    "env items that are not objects": pod_review(
        setting("spec", "containers", 0, "env", value=[1, "x", None, [], {"value": "1"}])
    ),
    "volumes that are not objects": pod_review(setting("spec", "volumes", value=[3, "v"])),
    # Hostile shapes: each is a refusal, and says the same.
    "spec missing": pod_review(deleting("spec")),
    "spec a list": pod_review(setting("spec", value=[])),
    "containers empty": pod_review(setting("spec", "containers", value=[])),
    "containers an object": pod_review(setting("spec", "containers", value={})),
    "container a string": pod_review(setting("spec", "containers", 1, value="aesmd")),
    "init containers an object": pod_review(setting("spec", "initContainers", value={})),
    "init container a number": pod_review(setting("spec", "initContainers", value=[1])),
    "resources a list": pod_review(setting("spec", "containers", 0, "resources", value=[])),
    "limits a string": pod_review(
        setting("spec", "containers", 1, "resources", "limits", value="16Mi")
    ),
    "requests a list": pod_review(
        setting("spec", "containers", 0, "resources", "requests", value=[])
    ),
    "env an object": pod_review(setting("spec", "containers", 0, "env", value={})),
    "volumeMounts a string": pod_review(
        setting("spec", "containers", 1, "volumeMounts", value="x")
    ),
    "volumes a string": pod_review(setting("spec", "volumes", value="x")),
    "metadata a list": pod_review(setting("metadata", value=[])),
    "annotations a list": pod_review(setting("metadata", "annotations", value=[])),
    "object a list": setting("request", "object", value=[])(load("pod-aesmd-host.json")),
}


def _with_edit(document: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> Any:
    edit(document)
    return document


CORPUS |= {
    "object missing": _with_edit(load("pod-aesmd-host.json"), deleting("request", "object")),
    "update of a hostile pod": _with_edit(
        _with_edit(load("pod-aesmd-host.json"), setting("request", "object", "spec", value=5)),
        setting("request", "operation", value="UPDATE"),
    ),
    "kind not an object": _with_edit(
        load("pod-aesmd-host.json"), setting("request", "kind", value=1)
    ),
    "uid a number": _with_edit(load("pod-aesmd-host.json"), setting("request", "uid", value=1)),
    "request a list": _with_edit(load("pod-aesmd-host.json"), setting("request", value=[])),
    "v1beta1": _with_edit(load("pod-aesmd-host.json"), setting("apiVersion", value="v1beta1")),
    "a list": [1, 2],
    "large": pod_review(
        setting("spec", "containers", value=[container(f"a{i}", "1Mi") for i in range(600)])
    ),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_answered_as_before(name: str) -> None:
    assert_same_answer(CORPUS[name])


def test_corpus_covers_every_outcome() -> None:
    outcomes = {assert_same_answer(document) for document in CORPUS.values()}
    assert outcomes == {"patched", "unchanged", "denied", "bad review"}


# Generated pods lean to what a user writes (named containers, EPC in limits, whole
# quantities) so that most are patched, with the odd value that is refused.
NAMES = st.sampled_from(["app", "app", "aesmd", "aesmd", "init", "web", "a~b", "c" * 54, ""])
QUANTITIES = st.sampled_from(["64Mi", "1Mi", "1Mi", "32Mi", " 2Mi ", "1", "0"]) | st.sampled_from(
    ["0.5", "1e100", "-1", 2**20, 2**64]
)
OTHER_RESOURCES = {ENCLAVE: st.just("1"), PROVISION: st.just("1"), "cpu": st.just("1")}
RESOURCE_MAP = (
    st.fixed_dictionaries({EPC: QUANTITIES}, optional=OTHER_RESOURCES)
    | st.fixed_dictionaries({}, optional=OTHER_RESOURCES)
    | st.none()
)
NAMED_ITEMS = st.none() | st.lists(
    st.fixed_dictionaries({"name": st.sampled_from(["aesmd-socket", "SGX_AESM_ADDR", "x"])})
    | st.integers(0, 3),
    max_size=3,
)
CONTAINER = st.fixed_dictionaries(
    {"name": NAMES, "resources": st.fixed_dictionaries({"limits": RESOURCE_MAP})},
    optional={
        "env": NAMED_ITEMS,
        "volumeMounts": NAMED_ITEMS,
        "restartPolicy": st.sampled_from(["Always", "OnFailure"]),
    },
) | st.fixed_dictionaries(
    {"name": NAMES},
    optional={
        "resources": st.none()
        | st.fixed_dictionaries({}, optional={"limits": RESOURCE_MAP, "requests": RESOURCE_MAP}),
        "restartPolicy": st.just("Always"),
    },
)
ANNOTATIONS = st.none() | st.dictionaries(
    st.sampled_from([PROVIDER, EPC, f"{NRI}app", f"{NRI}aesmd", "other"]),
    st.sampled_from(["aesmd", "aesmd", "app", "init", "", "64Mi", str(2**20), str(64 * 2**20)])
    | st.integers(0, 9),
    max_size=3,
)
PODS = st.fixed_dictionaries(
    {
        "spec": st.fixed_dictionaries(
            {"containers": st.lists(CONTAINER, min_size=1, max_size=4)},
            optional={
                "initContainers": st.none() | st.lists(CONTAINER, max_size=3),
                "volumes": NAMED_ITEMS,
            },
        )
    },
    optional={"metadata": st.fixed_dictionaries({}, optional={"annotations": ANNOTATIONS})},
)


@settings(max_examples=400, deadline=None)
@given(PODS)
def test_generated_pods_answered_as_before(pod: dict[str, Any]) -> None:
    document = load("pod-aesmd-host.json")
    document["request"]["object"] = pod
    assert_same_answer(document)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PATHS), JSON)
def test_any_value_anywhere_answered_as_before(path: tuple[str | int, ...], value: Any) -> None:
    assert_same_answer(replaced(path, value))


@pytest.mark.parametrize("depth", [500, 5000, 100_000])
@pytest.mark.parametrize("inside", ['"object": {', '"spec": {', '"volumes": [', '"annotations": {'])
def test_deep_nesting_answered_as_before(inside: str, depth: int) -> None:
    """A pod holding a deeply nested value: answered (500 levels) or refused as not JSON, as
    before, never a RecursionError escaping."""
    nested = ("[" * depth + "]" * depth).encode()
    text = json.dumps(load("pod-aesmd-host.json")).encode()
    opening = inside.encode()
    key = b'"deep": ' if inside.endswith("{") else b""  # an object member or a list item
    body = text.replace(opening, opening + key + nested + b", ", 1)
    assert body != text
    assert answered(review, body) == answered(previous_review.review, body)


def test_a_key_given_twice_is_answered_not_crashed() -> None:
    """JSON with a repeated key: the schema may refuse one occurrence while a plain reading
    keeps the other; the answer is still a review response (a denial here), never an error."""
    review_text = json.dumps(load("pod-aesmd-host.json"))
    # The second container of the first spec is refused; the last spec has one container.
    bad_first = '"spec": {"containers": [{"name": "x"}, {"name": "y", "env": {}}]}, '
    body = review_text.replace('"spec": {', bad_first + '"spec": {', 1).encode()
    outcome, answer = answered(review, body)
    assert outcome == "denied"
    assert "env must be a list" in answer["response"]["status"]["message"]
