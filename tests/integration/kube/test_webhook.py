"""The admission webhook over real TLS on loopback, fed reviews as kube-apiserver sends them."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import ssl
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import jsonpatch
import kubernetes_validate
import pytest
from aiohttp import web

from scm.kube.webhook.review import ReviewResult, review
from scm.kube.webhook.server import (
    LARGE_BODY,
    MAX_BODY,
    MAX_LARGE_IN_FLIGHT,
    make_app,
    start,
    tls_context,
)
from tests.tls import make_tls

FIXTURES = Path(__file__).parents[2] / "fixtures" / "admission"
K8S_VERSIONS = ("1.28", "1.32", "1.37")
ENCLAVE, PROVISION = "sgx.intel.com/enclave", "sgx.intel.com/provision"

Client = Callable[[str, bytes], Awaitable[tuple[int, Any]]]


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return document


def with_webhook(
    tmp_path: Path,
    scenario: Callable[[Client], Awaitable[None]],
    app: Callable[[], web.Application] = make_app,
) -> None:
    """Run ``scenario`` with a client that POSTs or GETs the webhook over verified TLS."""
    tls = make_tls(tmp_path)

    async def main() -> None:
        runner = await start(app(), "127.0.0.1", 0, tls_context(tls.cert, tls.key))
        port = runner.addresses[0][1]
        client_tls = ssl.create_default_context(cafile=tls.ca)
        try:
            async with aiohttp.ClientSession() as session:

                async def call(path: str, body: bytes) -> tuple[int, Any]:
                    url = f"https://127.0.0.1:{port}{path}"
                    method = "POST" if path == "/mutate" else "GET"
                    async with session.request(method, url, data=body, ssl=client_tls) as resp:
                        if resp.content_type == "application/json":
                            return resp.status, await resp.json()
                        return resp.status, await resp.text()

                await scenario(call)
        finally:
            await runner.cleanup()

    asyncio.run(main())


def post_reviews(tmp_path: Path, *documents: dict[str, Any] | bytes) -> list[tuple[int, Any]]:
    answers: list[tuple[int, Any]] = []

    async def scenario(call: Client) -> None:
        for document in documents:
            body = document if isinstance(document, bytes) else json.dumps(document).encode()
            answers.append(await call("/mutate", body))

    with_webhook(tmp_path, scenario)
    return answers


def patched_pod(review: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    response = answer["response"]
    assert response["uid"] == review["request"]["uid"]
    assert response["allowed"] is True and response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    pod: dict[str, Any] = jsonpatch.apply_patch(review["request"]["object"], patch)
    return pod


def validate_pod(pod: dict[str, Any]) -> None:
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)


def containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod["spec"]["containers"]}


def test_host_aesmd_pod_gets_enclave_socket_mount_and_epc_annotation(tmp_path: Path) -> None:
    review = load("pod-aesmd-host.json")
    ((status, answer),) = post_reviews(tmp_path, review)
    assert status == 200
    pod = patched_pod(review, answer)
    validate_pod(pod)
    app = containers(pod)["app"]
    assert app["resources"]["limits"][ENCLAVE] == "1"
    assert PROVISION not in app["resources"]["limits"]
    assert {"name": "aesmd-socket", "mountPath": "/var/run/aesmd"} in app["volumeMounts"]
    assert {"name": "SGX_AESM_ADDR", "value": "1"} in app["env"]
    assert {
        "name": "aesmd-socket",
        "hostPath": {"path": "/var/run/aesmd", "type": "DirectoryOrCreate"},
    } in pod["spec"]["volumes"]
    assert pod["metadata"]["annotations"]["sgx.intel.com/epc"] == "64Mi"


def test_aesmd_sidecar_shares_an_in_memory_socket_and_gets_provision(tmp_path: Path) -> None:
    review = load("pod-aesmd-sidecar.json")
    ((_, answer),) = post_reviews(tmp_path, review)
    pod = patched_pod(review, answer)
    validate_pod(pod)
    app, aesmd = containers(pod)["app"], containers(pod)["aesmd"]
    assert {"name": "aesmd-socket", "emptyDir": {"medium": "Memory"}} in pod["spec"]["volumes"]
    assert aesmd["resources"]["limits"][PROVISION] == "1"
    assert PROVISION not in app["resources"]["limits"]
    assert all(c["resources"]["limits"][ENCLAVE] == "1" for c in (app, aesmd))
    assert all(any(m["name"] == "aesmd-socket" for m in c["volumeMounts"]) for c in (app, aesmd))
    assert [e["name"] for e in app["env"]] == ["SGX_AESM_ADDR"]
    assert "env" not in aesmd
    assert pod["metadata"]["annotations"]["sgx.intel.com/epc"] == "48Mi"


def test_in_process_quote_provider_gets_provision_and_others_are_untouched(
    tmp_path: Path,
) -> None:
    review = load("pod-dcap-in-process.json")
    ((_, answer),) = post_reviews(tmp_path, review)
    pod = patched_pod(review, answer)
    validate_pod(pod)
    quoter, web = containers(pod)["quoter"], containers(pod)["web"]
    assert quoter["resources"]["limits"][PROVISION] == "1"
    assert quoter["resources"]["requests"][ENCLAVE] == "1"
    assert web == containers(review["request"]["object"])["web"]
    assert not any(v["name"] == "aesmd-socket" for v in pod["spec"]["volumes"])
    assert pod["metadata"]["annotations"]["sgx.intel.com/epc"] == "512Ki"


def test_mutation_is_idempotent_and_plain_pods_are_allowed_unchanged(tmp_path: Path) -> None:
    first = load("pod-aesmd-sidecar.json")
    ((_, answer),) = post_reviews(tmp_path, first)
    again = copy.deepcopy(first)
    again["request"]["object"] = patched_pod(first, answer)
    answers = post_reviews(tmp_path, again, load("pod-no-sgx.json"))
    for status, document in answers:
        assert status == 200
        assert document["response"]["allowed"] is True
        assert "patch" not in document["response"]


def with_container_resources(resources: dict[str, Any]) -> dict[str, Any]:
    review = load("pod-aesmd-host.json")
    review["request"]["object"]["spec"]["containers"][0]["resources"] = resources
    return review


@pytest.mark.parametrize(
    ("review", "says"),
    [
        (
            with_container_resources(
                {"limits": {"sgx.intel.com/epc": "64Mi"}, "requests": {"sgx.intel.com/epc": "32Mi"}}
            ),
            "requests (32Mi) must equal its limits (64Mi): set both to the same value",
        ),
        (
            with_container_resources({"limits": {"sgx.intel.com/epc": "0.5"}}),
            "is not a whole number of bytes: give it in whole bytes, e.g. 64Mi",
        ),
        (
            with_container_resources({"limits": {"sgx.intel.com/epc": "1e100"}}),
            "larger than any quantity Kubernetes can hold",
        ),
        (load("deployment.json"), "mutates Pods only, not apps/v1 Deployment"),
    ],
)
def test_invalid_pods_are_denied_with_how_to_fix(
    tmp_path: Path, review: dict[str, Any], says: str
) -> None:
    ((status, answer),) = post_reviews(tmp_path, review)
    assert status == 200
    response = answer["response"]
    assert response["uid"] == review["request"]["uid"]
    assert response["allowed"] is False and "patch" not in response
    assert says in response["status"]["message"]


def test_quote_provider_naming_a_missing_container_is_denied(tmp_path: Path) -> None:
    review = load("pod-dcap-in-process.json")
    review["request"]["object"]["metadata"]["annotations"]["sgx.intel.com/quote-provider"] = "qe"
    ((_, answer),) = post_reviews(tmp_path, review)
    assert answer["response"]["allowed"] is False
    assert "containers: quoter, web" in answer["response"]["status"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}',
        b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}',
    ],
)
def test_malformed_reviews_get_400(tmp_path: Path, body: bytes) -> None:
    ((status, text),) = post_reviews(tmp_path, body)
    assert status == 400
    assert text.strip()


def test_health_and_metrics_count_outcomes(tmp_path: Path) -> None:
    async def scenario(call: Client) -> None:
        assert await call("/healthz", b"") == (200, "ok\n")
        await call("/mutate", json.dumps(load("pod-aesmd-host.json")).encode())
        await call("/mutate", json.dumps(load("deployment.json")).encode())
        await call("/mutate", b"{")
        status, text = await call("/metrics", b"")
        assert status == 200
        for outcome in ("patched", "denied", "rejected"):
            assert f'scm_webhook_reviews_total{{outcome="{outcome}"}} 1.0' in text
        assert "scm_webhook_review_seconds_count 2.0" in text

    with_webhook(tmp_path, scenario)


# --- init containers, requests without limits, NRI EPC limits ------------------------------

NRI = "epc-limit.nri.io/container."


def with_init_containers(*containers: dict[str, Any]) -> dict[str, Any]:
    """The host-aesmd review (app: 64Mi EPC) with ``containers`` as its init containers."""
    review = load("pod-aesmd-host.json")
    review["request"]["object"]["spec"]["initContainers"] = list(containers)
    return review


def epc_container(name: str, epc: str, **extra: Any) -> dict[str, Any]:
    limits = {"sgx.intel.com/epc": epc}
    return {"name": name, "image": "registry.example/sgx-init:1.0", **extra} | {
        "resources": {"limits": limits, "requests": dict(limits)}
    }


def init_containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod["spec"]["initContainers"]}


def test_init_container_with_epc_gets_the_enclave_and_the_aesmd_socket(tmp_path: Path) -> None:
    review = with_init_containers(
        {"name": "plain-init", "image": "busybox"}, epc_container("seal-init", "128Mi")
    )
    ((_, answer),) = post_reviews(tmp_path, review)
    pod = patched_pod(review, answer)
    validate_pod(pod)
    seal = init_containers(pod)["seal-init"]
    assert seal["resources"]["limits"][ENCLAVE] == "1"
    assert {"name": "aesmd-socket", "mountPath": "/var/run/aesmd"} in seal["volumeMounts"]
    assert {"name": "SGX_AESM_ADDR", "value": "1"} in seal["env"]
    assert init_containers(pod)["plain-init"] == {"name": "plain-init", "image": "busybox"}
    # Init containers run one at a time before the app: the pod needs the largest of them
    # or the sum of its containers, whichever is more (as the scheduler counts it).
    assert pod["metadata"]["annotations"]["sgx.intel.com/epc"] == "128Mi"


def test_pod_epc_counts_sidecar_init_containers_with_the_app(tmp_path: Path) -> None:
    review = with_init_containers(
        epc_container("aesmd", "16Mi", restartPolicy="Always"), epc_container("init", "32Mi")
    )
    review["request"]["object"]["metadata"]["annotations"]["sgx.intel.com/quote-provider"] = "aesmd"
    ((_, answer),) = post_reviews(tmp_path, review)
    pod = patched_pod(review, answer)
    validate_pod(pod)
    aesmd = init_containers(pod)["aesmd"]
    assert aesmd["resources"]["limits"][PROVISION] == "1"
    assert {"name": "aesmd-socket", "emptyDir": {"medium": "Memory"}} in pod["spec"]["volumes"]
    assert "env" not in aesmd
    # The sidecar runs beside the app (64Mi + 16Mi) and beside the later init (16Mi + 32Mi).
    assert pod["metadata"]["annotations"]["sgx.intel.com/epc"] == "80Mi"


@pytest.mark.parametrize("where", ["containers", "initContainers"])
def test_epc_in_requests_only_is_denied_with_what_to_set(tmp_path: Path, where: str) -> None:
    review = load("pod-aesmd-host.json")
    spec = review["request"]["object"]["spec"]
    container = {
        "name": "only-requests",
        "image": "registry.example/sgx-app:1.0",
        "resources": {"requests": {"sgx.intel.com/epc": "8Mi"}},
    }
    spec.setdefault(where, []).append(container)
    ((_, answer),) = post_reviews(tmp_path, review)
    response = answer["response"]
    assert response["allowed"] is False and "patch" not in response
    message = response["status"]["message"]
    assert "container 'only-requests'" in message
    assert "set resources.limits" in message and "8Mi" in message


def test_every_sgx_container_gets_its_nri_epc_limit_in_bytes(tmp_path: Path) -> None:
    review = with_init_containers(epc_container("init", "1Mi"))
    review["request"]["object"]["spec"]["containers"].append(
        {"name": "plain", "image": "registry.example/web:1.0"}
    )
    ((_, answer),) = post_reviews(tmp_path, review)
    pod = patched_pod(review, answer)
    annotations = pod["metadata"]["annotations"]
    assert {k: v for k, v in annotations.items() if k.startswith(NRI)} == {
        f"{NRI}app": str(64 * 2**20),
        f"{NRI}init": str(2**20),
    }


def test_nri_annotations_are_corrected_and_never_patched_twice(tmp_path: Path) -> None:
    review = load("pod-aesmd-sidecar.json")
    # A limit set by hand that disagrees with the container's EPC is replaced.
    review["request"]["object"]["metadata"]["annotations"][f"{NRI}app"] = "1"
    ((_, answer),) = post_reviews(tmp_path, review)
    pod = patched_pod(review, answer)
    assert pod["metadata"]["annotations"][f"{NRI}app"] == str(32 * 2**20)
    assert pod["metadata"]["annotations"][f"{NRI}aesmd"] == str(16 * 2**20)
    again = copy.deepcopy(review)
    again["request"]["object"] = pod
    ((_, second),) = post_reviews(tmp_path, again)
    assert second["response"]["allowed"] is True and "patch" not in second["response"]


def test_container_name_too_long_for_an_annotation_key_is_denied(tmp_path: Path) -> None:
    name = "c" * 54  # "container." + 54 characters is over the 63 of an annotation name
    review = load("pod-aesmd-host.json")
    review["request"]["object"]["spec"]["containers"][0]["name"] = name
    ((_, answer),) = post_reviews(tmp_path, review)
    assert answer["response"]["allowed"] is False
    assert "53 characters" in answer["response"]["status"]["message"]


# --- body limit and large reviews beside small ones ----------------------------------------


def large_review(containers: int) -> dict[str, Any]:
    """The host-aesmd review with ``containers`` SGX containers: large, slow, but honest."""
    review = load("pod-aesmd-host.json")
    spec = review["request"]["object"]["spec"]
    template = spec["containers"][0]
    spec["containers"] = [dict(template, name=f"app-{i}") for i in range(containers)]
    return review


def test_bodies_over_3_mib_are_refused_with_413_before_review(tmp_path: Path) -> None:
    document = large_review(1)
    document["request"]["object"]["metadata"]["annotations"]["padding"] = "x" * MAX_BODY
    body = json.dumps(document).encode()
    assert len(body) > MAX_BODY

    async def chunked() -> Any:
        yield body[: MAX_BODY // 2]
        yield body[MAX_BODY // 2 :]

    async def scenario(call: Client) -> None:
        status, text = await call("/mutate", body)
        assert status == 413 and "3 MiB" in text
        status, _ = await call("/mutate", chunked())  # type: ignore[arg-type]
        assert status == 413
        status, answer = await call("/mutate", json.dumps(large_review(1)).encode())
        assert status == 200 and answer["response"]["allowed"] is True
        _, metrics = await call("/metrics", b"")
        assert 'scm_webhook_reviews_total{outcome="too_large"} 2.0' in metrics

    with_webhook(tmp_path, scenario)


def test_a_small_review_is_answered_while_large_ones_are_held(tmp_path: Path) -> None:
    """Large reviews run in a worker of the app's own: hold it, and a small pod still gets
    its answer; one large review more than the bound gets 503 at once instead of queueing."""
    release = threading.Event()

    def held(body: bytes) -> ReviewResult:
        release.wait(60)
        return review(body)

    big = json.dumps(large_review(600)).encode()
    assert len(big) >= LARGE_BODY

    async def scenario(call: Client) -> None:
        large = [
            asyncio.ensure_future(call("/mutate", big)) for _ in range(MAX_LARGE_IN_FLIGHT + 1)
        ]
        try:
            done, _ = await asyncio.wait(large, timeout=60, return_when=asyncio.FIRST_COMPLETED)
            ((status, text),) = [task.result() for task in done]
            assert status == 503 and "in flight" in text
            small = load("pod-aesmd-sidecar.json")
            status, answer = await call("/mutate", json.dumps(small).encode())
            assert status == 200
            patched_pod(small, answer)
            assert sum(task.done() for task in large) == 1  # the held ones are still held
        finally:
            release.set()
        answers = [await task for task in large if task not in done]
        assert len(answers) == MAX_LARGE_IN_FLIGHT
        for status, answer in answers:
            assert status == 200
            pod = patched_pod(large_review(600), answer)
            annotations = pod["metadata"]["annotations"]
            assert annotations["sgx.intel.com/epc"] == f"{600 * 64}Mi"
            assert sum(key.startswith(NRI) for key in annotations) == 600

    def threaded() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=1)

    with_webhook(tmp_path, scenario, lambda: make_app(threaded, review_large=held))


def test_large_reviews_are_answered_by_the_worker_process(tmp_path: Path) -> None:
    big = large_review(600)

    async def scenario(call: Client) -> None:
        body = json.dumps(big).encode()
        answers = await asyncio.gather(*(call("/mutate", body) for _ in range(2)))
        for status, answer in answers:
            assert status == 200
            pod = patched_pod(big, answer)
            assert pod["metadata"]["annotations"]["sgx.intel.com/epc"] == f"{600 * 64}Mi"
        _, metrics = await call("/metrics", b"")
        assert 'scm_webhook_reviews_total{outcome="patched"} 2.0' in metrics

    with_webhook(tmp_path, scenario)


def review_or_die(body: bytes) -> ReviewResult:
    """Reviews, except that a pod annotated scm-test/die kills the worker process, as the
    kernel's OOM killer would. Module-level: the worker process imports it by name."""
    if b'"scm-test/die"' in body:
        os._exit(137)
    return review(body)


def test_a_dead_worker_is_replaced_and_its_review_answered_503(tmp_path: Path) -> None:
    fatal = large_review(600)
    fatal["request"]["object"]["metadata"]["annotations"]["scm-test/die"] = "yes"
    honest = large_review(600)

    async def scenario(call: Client) -> None:
        status, text = await call("/mutate", json.dumps(fatal).encode())
        assert status == 503 and "died" in text
        status, answer = await call("/mutate", json.dumps(honest).encode())
        assert status == 200
        patched_pod(honest, answer)

    with_webhook(tmp_path, scenario, lambda: make_app(review_large=review_or_die))
