"""``scm openstack`` as an operator runs it: the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.hostroots import HOSTS

SCM = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"


def scm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCM, *args], capture_output=True, text=True, timeout=60, env=env)


def test_check_host_reports_sgx_ready_with_versions() -> None:
    root = str(HOSTS / "sgx-2socket" / "root")
    result = scm(
        "openstack", "check-host", "--root", root,
        "--libvirt-version", "9.0.0", "--qemu-version", "7.2.0", "--require", "sgx",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("SGX guests: ready\n")
    assert "TDX guests: not ready" in result.stdout


def test_check_host_require_fails_with_one_line_and_the_fixes_above() -> None:
    root = str(HOSTS / "no-tee" / "root")
    result = scm("openstack", "check-host", "--root", root, "--require", "tdx")
    assert result.returncode == 1  # checked and refused
    assert result.stderr == "scm: error: this host is not ready for TDX guests\n"
    assert "fix: enable TME-MT and TDX in the BIOS" in result.stdout


def test_check_host_json() -> None:
    root = str(HOSTS / "tdx-host" / "root")
    result = scm("openstack", "check-host", "--root", root, "--format", "json")
    document = json.loads(result.stdout)
    assert document["tdx_ready"] is False
    names = {c["name"]: c["ok"] for c in document["checks"]}
    assert names["TDX host (kvm_intel tdx)"] is True
    assert names["quote generation service"] is False


def test_check_host_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    root = str(HOSTS / "tdx-host" / "root")
    bad_version = scm("openstack", "check-host", "--root", root, "--qemu-version", "new")
    assert bad_version.returncode == 65
    assert bad_version.stderr.startswith("scm: error: version 'new'")
    missing = scm("openstack", "check-host", "--root", str(tmp_path / "nowhere"))
    assert missing.returncode != 0 and missing.stderr.startswith("scm: error:")
    assert "Traceback" not in missing.stderr


def test_flavor_spec_json_for_sgx_and_tdx() -> None:
    result = scm("openstack", "flavor-spec", "--sgx-epc", "1G", "--tdx", "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["flavor_extra_specs"]["resources:CUSTOM_SGX_EPC_MB"] == "1024"
    assert document["flavor_extra_specs"]["hw:mem_encryption_model"] == "intel-tdx"
    assert document["image_properties"]["hw_firmware_stateless"] == "true"


def test_flavor_spec_bad_size_is_a_one_line_error() -> None:
    result = scm("openstack", "flavor-spec", "--sgx-epc", "64K")
    assert result.returncode == 65
    assert (
        result.stderr == "scm: error: EPC size '64K' must be a whole number of MiB (use M or G)\n"
    )


def test_apply_without_credentials_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["HOME"] = str(tmp_path)  # no ~/.config/openstack/clouds.yaml
    result = scm("openstack", "flavor-spec", "--sgx-epc", "64M", "--apply", "sgx.small", env=env)
    assert result.returncode == 78
    assert result.stderr.startswith("scm: error: no OpenStack credentials")
