"""deploy/kubernetes: every overlay renders with kubectl kustomize and every object validates."""

from __future__ import annotations

import base64
import dataclasses
import json
from functools import cache

import jsonschema
import kubernetes_validate
import pytest
from packaging.version import Version

from scm.kube.settings import KubeSettings
from scm.platform import discover
from scm.platform.render import render_nfd
from tests.hostroots import HOSTS
from tests.integration.kube.conftest import OVERLAYS, REPO, Rendered, by_kind

NFR_SCHEMA = json.loads(
    (REPO / "tests" / "fixtures" / "kube" / "nodefeaturerule-v1alpha1.schema.json").read_text()
)
# Kinds kubernetes-validate has no schema for; each gets its own check below.
CUSTOM_KINDS = {"NodeFeatureRule", "Certificate", "Issuer"}
VERSIONS = [
    f"1.{minor}" for minor in range(28, Version(kubernetes_validate.latest_version()).minor + 1)
]


@cache
def validate(document: str, version: str) -> None:
    kubernetes_validate.validate(json.loads(document), version, strict=True)


@pytest.mark.parametrize("target", [*OVERLAYS, "examples"])
def test_every_known_object_validates_strictly_on_every_version(
    rendered: Rendered, target: str
) -> None:
    objects = rendered[target]
    assert objects
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        for version in VERSIONS:
            validate(json.dumps(obj, sort_keys=True), version)


def test_overlays_pick_their_registration_and_certificate(
    rendered: Rendered,
) -> None:
    for name in OVERLAYS:
        objects = rendered[name]
        kinds = {o["kind"] for o in objects}
        (agent,) = by_kind(objects, "DaemonSet")
        env = {e["name"]: e for e in agent["spec"]["template"]["spec"]["containers"][0]["env"]}
        mode = env["SCM_KUBE_EPC_REGISTRATION"]["value"]
        (hook,) = by_kind(objects, "MutatingWebhookConfiguration")
        if name.startswith("nfd-"):
            assert mode == "nfd" and "NodeFeatureRule" in kinds and "ClusterRole" not in kinds
        else:
            assert mode == "node-status" and "NodeFeatureRule" not in kinds
            (role,) = by_kind(objects, "ClusterRole")
            assert {r for rule in role["rules"] for r in rule["resources"]} == {
                "nodes",
                "nodes/status",
            }
        if name.endswith("-cert-manager"):
            annotations = hook["metadata"]["annotations"]
            assert annotations["cert-manager.io/inject-ca-from"] == "scm-system/scm-webhook"
            (cert,) = by_kind(objects, "Certificate")
            assert cert["spec"]["secretName"] == "scm-webhook-tls"
        else:
            (secret,) = by_kind(objects, "Secret")
            assert secret["metadata"]["name"] == "scm-webhook-tls"
            ca_bundle = hook["webhooks"][0]["clientConfig"]["caBundle"]
            assert ca_bundle == secret["data"]["ca.crt"]
            assert base64.b64decode(ca_bundle).startswith(b"-----BEGIN CERTIFICATE-----")


def test_agent_environment_names_real_settings(rendered: Rendered) -> None:
    fields = {f"SCM_KUBE_{f.name.upper()}" for f in dataclasses.fields(KubeSettings)}
    for name in OVERLAYS:
        (agent,) = by_kind(rendered[name], "DaemonSet")
        for env in agent["spec"]["template"]["spec"]["containers"][0]["env"]:
            assert env["name"] in fields


def test_node_feature_rule_matches_its_schema_and_the_features_scm_writes(
    rendered: Rendered,
) -> None:
    (rule,) = by_kind(rendered["nfd-cert-manager"], "NodeFeatureRule")
    jsonschema.validate(rule, NFR_SCHEMA)
    features = render_nfd(discover(HOSTS / "tdx-host" / "root")).splitlines()
    hidden = {line.split("=")[0] for line in features[features.index("# +no-label") + 1 :]}
    labels = {line.split("=")[0] for line in features if "=" in line} - hidden
    for each in rule["spec"]["rules"]:
        for term in each["matchFeatures"]:
            names = set(term["matchExpressions"])
            assert names <= (hidden if term["feature"] == "local.feature" else labels)
        for value in each.get("extendedResources", {}).values():
            assert value.removeprefix("@local.feature.") in hidden


def test_node_feature_rule_schema_catches_mistakes() -> None:
    bad = {
        "apiVersion": "nfd.k8s-sigs.io/v1alpha1",
        "kind": "NodeFeatureRule",
        "metadata": {"name": "x"},
        "spec": {
            "rules": [
                {
                    "name": "r",
                    "matchFeatures": [
                        {"feature": "f", "matchExpressions": {"a": {"op": "Equals"}}}
                    ],
                }
            ]
        },
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, NFR_SCHEMA)


def test_examples_use_the_resources_scm_serves(rendered: Rendered) -> None:
    pods = {p["metadata"]["name"]: p for p in by_kind(rendered["examples"], "Pod")}
    sgx_limits = pods["sgx-sample"]["spec"]["containers"][0]["resources"]["limits"]
    assert "sgx.intel.com/epc" in sgx_limits
    tdx = pods["tdx-sample"]
    assert tdx["spec"]["runtimeClassName"] == "kata-qemu-tdx"
    assert tdx["spec"]["containers"][0]["resources"]["limits"]["tdx.intel.com/keys"] == 1
