"""deploy/kubernetes as a cluster would see it: namespaces, references and who calls the webhook.

kube-apiserver resolves a Deployment's Secret, a webhook's Service and cert-manager's
``inject-ca-from`` within one namespace; an object rendered elsewhere is simply not found.
These checks stand in for applying each overlay to a real cluster, which was not possible here.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import celpy
import kubernetes_validate
import pytest

from tests.integration.kube.conftest import OVERLAYS, Rendered, by_kind, kustomize

NAMESPACE = "scm-system"
FIXTURES = Path(__file__).parents[2] / "fixtures" / "admission"
# Kinds that have no namespace; everything else must carry metadata.namespace.
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "NodeFeatureRule",
    "RuntimeClass",
    "PriorityClass",
}
INJECT_CA = "cert-manager.io/inject-ca-from"


def namespace_problems(objects: list[dict[str, Any]]) -> list[str]:
    return [
        f"{o['kind']}/{o['metadata']['name']} is in {o['metadata'].get('namespace')!r}"
        for o in objects
        if o["kind"] not in CLUSTER_SCOPED and o["metadata"].get("namespace") != NAMESPACE
    ]


def reference_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Every name one object gives for another, resolved as the API server would."""
    present = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects}
    # A cert-manager Certificate creates its Secret in its own namespace.
    for cert in by_kind(objects, "Certificate"):
        present.add(("Secret", cert["metadata"].get("namespace"), cert["spec"]["secretName"]))
    problems: list[str] = []

    def need(kind: str, namespace: str | None, name: str, by: str) -> None:
        if (kind, namespace, name) not in present:
            problems.append(f"{by} refers to {kind} {namespace}/{name}, which is not rendered")

    for workload in by_kind(objects, "Deployment") + by_kind(objects, "DaemonSet"):
        namespace = workload["metadata"].get("namespace")
        spec = workload["spec"]["template"]["spec"]
        by = f"{workload['kind']} {namespace}/{workload['metadata']['name']}"
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                need("Secret", namespace, volume["secret"]["secretName"], by)
        if "serviceAccountName" in spec:
            need("ServiceAccount", namespace, spec["serviceAccountName"], by)
    for hook in by_kind(objects, "MutatingWebhookConfiguration"):
        by = f"MutatingWebhookConfiguration {hook['metadata']['name']}"
        for webhook in hook["webhooks"]:
            service = webhook["clientConfig"]["service"]
            need("Service", service["namespace"], service["name"], by)
        inject = hook["metadata"].get("annotations", {}).get(INJECT_CA)
        if inject is not None:
            namespace, _, name = inject.partition("/")
            need("Certificate", namespace, name, by)
    for cert in by_kind(objects, "Certificate"):
        namespace = cert["metadata"].get("namespace")
        issuer = cert["spec"]["issuerRef"]
        if issuer.get("kind", "Issuer") == "Issuer":
            need("Issuer", namespace, issuer["name"], f"Certificate {cert['metadata']['name']}")
    for binding in by_kind(objects, "ClusterRoleBinding"):
        for subject in binding["subjects"]:
            if subject["kind"] == "ServiceAccount":
                need("ServiceAccount", subject["namespace"], subject["name"], "ClusterRoleBinding")
    return problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_namespaced_object_lands_in_scm_system(rendered: Rendered, overlay: str) -> None:
    assert namespace_problems(rendered[overlay]) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_reference_resolves_in_its_namespace(rendered: Rendered, overlay: str) -> None:
    assert reference_problems(rendered[overlay]) == []


def test_the_checks_catch_a_secret_left_in_the_default_namespace(rendered: Rendered) -> None:
    objects = copy.deepcopy(rendered["node-status-provided-certificate"])
    (secret,) = by_kind(objects, "Secret")
    del secret["metadata"]["namespace"]
    assert namespace_problems(objects) == ["Secret/scm-webhook-tls is in None"]
    assert reference_problems(objects) == [
        "Deployment scm-system/scm-webhook refers to Secret scm-system/scm-webhook-tls, "
        "which is not rendered"
    ]


def test_the_checks_catch_a_certificate_outside_inject_ca_from(rendered: Rendered) -> None:
    objects = copy.deepcopy(rendered["nfd-cert-manager"])
    (cert,) = by_kind(objects, "Certificate")
    cert["metadata"]["namespace"] = "default"
    problems = reference_problems(objects)
    assert any("Certificate scm-system/scm-webhook" in p for p in problems)
    assert any("Secret scm-system/scm-webhook-tls" in p for p in problems)


@pytest.mark.parametrize("overlay", [o for o in OVERLAYS if o.endswith("provided-certificate")])
def test_ca_bundle_is_the_provided_ca(rendered: Rendered, deploy_copy: Path, overlay: str) -> None:
    ca = (deploy_copy / "components" / "provided-certificate" / "tls" / "ca.crt").read_bytes()
    (hook,) = by_kind(rendered[overlay], "MutatingWebhookConfiguration")
    for webhook in hook["webhooks"]:
        assert base64.b64decode(webhook["clientConfig"]["caBundle"]) == ca


# --- which pods reach the webhook ----------------------------------------------------------


def admission_pod(name: str) -> dict[str, Any]:
    pod: dict[str, Any] = json.loads((FIXTURES / name).read_text())["request"]["object"]
    return pod


def with_epc_in(where: str, key: str) -> dict[str, Any]:
    """The plain pod, with one container (or an init container) asking for EPC in ``key``."""
    pod = admission_pod("pod-no-sgx.json")
    container = {"name": "init", "image": "busybox"}
    if where == "initContainers":
        pod["spec"]["initContainers"] = [container]
    else:
        container = pod["spec"]["containers"][0]
    container["resources"] = {key: {"sgx.intel.com/epc": "4Mi"}}
    return pod


def calls_webhook(webhook: dict[str, Any], pod: dict[str, Any]) -> bool:
    """Whether kube-apiserver would call ``webhook`` for a CREATE of ``pod``: every
    matchCondition must be true (objectSelector is checked against the pod's labels)."""
    selector = webhook.get("objectSelector", {}).get("matchLabels", {})
    labels = pod["metadata"].get("labels", {})
    if any(labels.get(key) != value for key, value in selector.items()):
        return False
    env = celpy.Environment()
    for condition in webhook.get("matchConditions", []):
        program = env.program(env.compile(condition["expression"]))
        if not bool(program.evaluate({"object": celpy.json_to_cel(pod)})):
            return False
    return True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_pods_asking_for_epc_call_the_webhook(rendered: Rendered, overlay: str) -> None:
    (hook,) = by_kind(rendered[overlay], "MutatingWebhookConfiguration")
    (webhook,) = hook["webhooks"]
    assert webhook["failurePolicy"] == "Fail"
    assert webhook["matchConditions"]
    for fixture in ("pod-aesmd-host.json", "pod-aesmd-sidecar.json", "pod-dcap-in-process.json"):
        assert calls_webhook(webhook, admission_pod(fixture)), fixture
    for where in ("containers", "initContainers"):
        for key in ("limits", "requests"):
            assert calls_webhook(webhook, with_epc_in(where, key)), (where, key)
    assert not calls_webhook(webhook, admission_pod("pod-no-sgx.json"))
    other = admission_pod("pod-no-sgx.json")
    other["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    other["spec"]["initContainers"] = [{"name": "init", "image": "busybox", "resources": {}}]
    assert not calls_webhook(webhook, other)


def test_match_conditions_are_checked_by_the_1_30_schema(rendered: Rendered) -> None:
    (hook,) = by_kind(rendered["nfd-cert-manager"], "MutatingWebhookConfiguration")
    for version in ("1.30", kubernetes_validate.latest_version()):
        kubernetes_validate.validate(hook, version, strict=True)
        broken = copy.deepcopy(hook)
        del broken["webhooks"][0]["matchConditions"][0]["expression"]
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, version, strict=True)


def test_label_selector_component_serves_clusters_without_match_conditions(
    deploy_copy: Path,
) -> None:
    objects = overlay_with(
        deploy_copy, "older-cluster", "node-status", "cert-manager", "sgx-label-selector"
    )
    (hook,) = by_kind(objects, "MutatingWebhookConfiguration")
    (webhook,) = hook["webhooks"]
    assert "matchConditions" not in webhook
    for version in ("1.25", "1.27", kubernetes_validate.latest_version()):
        kubernetes_validate.validate(hook, version, strict=True)
    labelled = admission_pod("pod-aesmd-host.json")
    assert not calls_webhook(webhook, labelled)
    labelled["metadata"].setdefault("labels", {}).update(webhook["objectSelector"]["matchLabels"])
    assert calls_webhook(webhook, labelled)
    assert not calls_webhook(webhook, admission_pod("pod-no-sgx.json"))
    assert namespace_problems(objects) == [] and reference_problems(objects) == []


def overlay_with(deploy_copy: Path, name: str, *components: str) -> list[dict[str, Any]]:
    """An overlay of the base with ``components``, written into the copy and rendered."""
    overlay = deploy_copy / "overlays" / name
    overlay.mkdir()
    listed = "".join(f"  - ../../components/{c}\n" for c in components)
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [../../base]\ncomponents:\n{listed}"
    )
    return kustomize(overlay)


def test_nri_component_runs_the_sgx_epc_plugin_on_sgx_nodes(deploy_copy: Path) -> None:
    objects = overlay_with(deploy_copy, "with-nri", "nfd", "cert-manager", "nri-sgx-epc")
    assert namespace_problems(objects) == [] and reference_problems(objects) == []
    (plugin,) = [d for d in by_kind(objects, "DaemonSet") if d["metadata"]["name"] == "nri-sgx-epc"]
    spec = plugin["spec"]["template"]["spec"]
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["nodeSelector"]["intel.feature.node.kubernetes.io/sgx"] == "true"
    (container,) = spec["containers"]
    assert container["image"].startswith("ghcr.io/containers/nri-plugins/nri-sgx-epc:v")
    assert {"name": "nri-sockets", "mountPath": "/var/run/nri"} in container["volumeMounts"]
    (volume,) = spec["volumes"]
    assert volume["hostPath"]["path"] == "/var/run/nri"
    for version in ("1.28", kubernetes_validate.latest_version()):
        kubernetes_validate.validate(plugin, version, strict=True)
