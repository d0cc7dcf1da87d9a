"""deploy/kubernetes rendered once per session, from a copy holding a provided certificate."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.tls import make_tls

REPO = Path(__file__).parents[3]
DEPLOY = REPO / "deploy" / "kubernetes"
OVERLAYS = sorted(p.name for p in (DEPLOY / "overlays").iterdir())

Rendered = dict[str, list[dict[str, Any]]]


def kustomize(path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize PATH`` as a list of objects."""
    result = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


@pytest.fixture(scope="session")
def deploy_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/kubernetes whose provided-certificate component has its three files."""
    copy = tmp_path_factory.mktemp("deploy") / "kubernetes"
    shutil.copytree(DEPLOY, copy)
    tls_dir = copy / "components" / "provided-certificate" / "tls"
    files = make_tls(tls_dir, "scm-webhook.scm-system.svc")
    files.cert.rename(tls_dir / "tls.crt")
    files.key.rename(tls_dir / "tls.key")
    files.ca.rename(tls_dir / "ca.crt")
    return copy


@pytest.fixture(scope="session")
def rendered(deploy_copy: Path) -> Rendered:
    """Every overlay and the examples, rendered."""
    targets = {name: deploy_copy / "overlays" / name for name in OVERLAYS}
    targets["examples"] = deploy_copy / "examples"
    return {name: kustomize(path) for name, path in targets.items()}
