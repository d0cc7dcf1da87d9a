"""deploy/istio and deploy/systemd: what can be checked without a cluster or a node."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from packaging.version import Version

from scm.config import load_settings
from scm.pki.istio_ca import IstioCASettings
from scm.pki.local_ca import CASettings
from scm.sds.daemon import SdsSettings

REPO = Path(__file__).parents[3]
ISTIO = REPO / "deploy" / "istio"
UNIT = REPO / "deploy" / "systemd" / "scm-sds.service"
VERSIONS = [
    f"1.{minor}" for minor in range(28, Version(kubernetes_validate.latest_version()).minor + 1)
]
SCM = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"
# Volumes Istio's own "sidecar" template adds, which the scm-sds template mounts too.
ISTIO_VOLUMES = [
    {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}},
    {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
        "audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}},
]  # fmt: skip


def scm_template() -> dict[str, Any]:
    values = yaml.safe_load((ISTIO / "istiod-values.yaml").read_text())
    template: dict[str, Any] = yaml.safe_load(
        values["sidecarInjectorWebhook"]["templates"]["scm-sds"]
    )
    return template


def scm_container() -> dict[str, Any]:
    (container,) = [c for c in scm_template()["spec"]["containers"] if c["name"] == "scm-sds"]
    return container


def serve_options() -> set[str]:
    """The options `scm sds serve --help` lists."""
    result = subprocess.run(
        [SCM, "sds", "serve", "--help"], capture_output=True, text=True, check=True
    )
    return set(re.findall(r"--[a-z][a-z-]+", result.stdout))


def test_injected_pod_validates_against_every_kubernetes_version() -> None:
    objects = list(yaml.safe_load_all((ISTIO / "example-workload.yaml").read_text()))
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert (
        "scm-sds"
        in deployment["spec"]["template"]["metadata"]["annotations"]["inject.istio.io/templates"]
    )
    # what injection produces, roughly: the template's containers and volumes added
    template = scm_template()["spec"]
    proxy = {"name": "istio-proxy", "image": "istio/proxyv2:1.28.0"}
    containers = {c["name"]: dict(c) for c in [*pod["containers"], proxy]}
    for container in template["containers"]:
        containers[container["name"]] = {**containers.get(container["name"], {}), **container}
    pod["containers"] = list(containers.values())
    pod["volumes"] = template["volumes"] + ISTIO_VOLUMES
    for obj in objects:
        for version in VERSIONS:
            kubernetes_validate.validate(json.loads(json.dumps(obj)), version, strict=True)
    mounts = {m["name"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
    assert mounts <= {v["name"] for v in pod["volumes"]}


def test_template_uses_real_scm_options_and_settings() -> None:
    container = scm_container()
    args = container["args"]
    assert args[2:4] == ["sds", "serve"]
    used = {a for a in args if a.startswith("--")} - {"--state-dir"}
    assert used <= serve_options()
    environ = {e["name"]: "x" for e in container["env"]}
    environ["SCM_CA_BACKEND"] = "istio"
    settings = load_settings(environ=environ)
    sds = settings.section("sds", SdsSettings)
    assert (sds.namespace, sds.service_account) == ("x", "x")
    assert settings.section("ca", CASettings).backend == "istio"
    assert settings.section("istio_ca", IstioCASettings).address == "x"
    socket = args[args.index("--socket") + 1]
    proxy_mounts = [
        m["mountPath"]
        for c in scm_template()["spec"]["containers"]
        if c["name"] == "istio-proxy"
        for m in c["volumeMounts"]
    ]
    # istio-agent looks for an external SDS server at exactly this path
    assert socket == "/var/run/secrets/workload-spiffe-uds/socket"
    assert str(Path(socket).parent) in proxy_mounts


def test_systemd_unit_verifies_and_runs_a_real_command(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    text = UNIT.read_text()
    exec_start = re.search(r"^ExecStart=(.*?)(?<!\\)$", text, re.M | re.S)
    assert exec_start is not None
    argv = shlex.split(exec_start.group(1).replace("\\\n", " "))
    assert argv[0] == "/usr/local/bin/scm" and argv[3:5] == ["sds", "serve"]
    assert {a for a in argv if a.startswith("--")} - {"--state-dir"} <= serve_options()
    # verify a copy whose ExecStart points at this environment's scm (which must exist)
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace("/usr/local/bin/scm", SCM))
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
