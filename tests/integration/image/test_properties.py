"""`scm image properties`: what a cloud needs to schedule a guest image, printed or applied."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scm.image.properties import guest_properties
from tests.integration.image.glance import glance_server

SCM = str(Path(sys.executable).parent / "scm")
IMAGE_ID = "0b6f1c9e-5d8a-4f5e-9a43-1c2b3d4e5f60"


def scm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCM, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})  # fmt: skip


def test_tdx_properties():
    spec = guest_properties("tdx")
    assert spec.image_properties == {
        "hw_firmware_stateless": "True",
        "hw_firmware_type": "uefi",
        "hw_machine_type": "q35",
        "hw_mem_encryption": "True",
        "hw_mem_encryption_model": "intel-tdx",
        "hw_video_model": "none",
    }
    assert spec.extra_specs["hw:mem_encryption_model"] == "intel-tdx"


def test_sgx_properties_and_flavor():
    result = scm("image", "properties", "--tee", "sgx", "--sgx-epc", "128M", "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["image_properties"]["trait:HW_CPU_X86_SGX"] == "required"
    assert document["image_properties"]["hw_firmware_type"] == "uefi"  # the image is UEFI-only
    assert document["flavor_extra_specs"]["resources:CUSTOM_SGX_EPC_MB"] == "128"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tee", "sgx", "--sgx-epc", "1.5G"], "is not a size"),
        (["--tee", "tdx", "--sgx-epc", "64M"], "--sgx-epc goes with --tee sgx"),
    ],
)
def test_bad_input(args, message):
    result = scm("image", "properties", *args)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert message in result.stderr


@pytest.fixture
def cloud(tmp_path):
    image = {"id": IMAGE_ID, "name": "tdx-guest", "status": "active", "visibility": "private"}
    with glance_server({IMAGE_ID: image}) as glance:
        clouds = tmp_path / "clouds.yaml"
        clouds.write_text(
            f"clouds:\n  lab:\n    auth_type: none\n    image_endpoint_override: {glance.url}\n"
        )
        yield glance, {"OS_CLIENT_CONFIG_FILE": str(clouds)}


def test_apply_sets_the_properties_through_glance(cloud):
    glance, env = cloud
    result = scm("image", "properties", "--tee", "tdx", "--apply", "tdx-guest", "--os-cloud",
                 "lab", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    image = glance.images[IMAGE_ID]
    for key, value in guest_properties("tdx").image_properties.items():
        assert image[key] == value
    assert ("PATCH", f"/v2/images/{IMAGE_ID}") in glance.requests
    # What was done, once, on stdout; nothing on stderr.
    assert result.stdout.startswith("set ") and "on image tdx-guest" in result.stdout
    assert len(result.stdout.splitlines()) == 1 and result.stderr == ""


def test_apply_honours_json(cloud):
    _, env = cloud
    result = scm("image", "properties", "--tee", "tdx", "--apply", "tdx-guest", "--os-cloud",
                 "lab", "--format", "json", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["image"] == "tdx-guest"
    assert document["image_properties"] == guest_properties("tdx").image_properties
    assert set(document) == {"image", "image_properties", "flavor_extra_specs"}


def test_apply_to_a_missing_image(cloud):
    glance, env = cloud
    result = scm("image", "properties", "--tee", "tdx", "--apply", "nope", "--os-cloud", "lab",
                 env=env)  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.strip() == "scm: error: image 'nope' does not exist"
    assert not any(method == "PATCH" for method, _ in glance.requests)
