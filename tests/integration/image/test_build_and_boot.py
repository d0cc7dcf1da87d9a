"""Build real guest images and boot one under QEMU with OVMF (`make test-images`).

There is no TDX here, so the guest boots as an ordinary UEFI VM under TCG; booting as a
real trust domain was never tested. The bootstrap is cached between runs (the image
cache directory of the settings, by default ~/.cache/scm/images).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.image

SCM = str(Path(sys.executable).parent / "scm")
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
BOOT_DEADLINE_SECONDS = 900  # a bound on waiting, not a measurement
QUOTE_PROBE = (
    "scm attest quote --report-data $(printf '%0128d' 0) >/dev/null 2>/tmp/q;"
    " echo SCM-QUOTE $? $(base64 -w0 /tmp/q) END > /dev/ttyS0"
)
USER_DATA = f"""#cloud-config
runcmd:
  - [sh, -c, "echo SCM-INSPECT $(scm inspect --format json | base64 -w0) END > /dev/ttyS0"]
  - [sh, -c, "{QUOTE_PROBE}"]
final_message: "SCM-CLOUD-INIT-FINISHED"
"""


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("images")
    built = {}
    for tee in ("tdx", "sgx"):
        target = out / f"{tee}.qcow2"
        result = subprocess.run(
            [SCM, "image", "build", "--tee", tee, "--output", str(target)],
            capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        built[tee] = target
    return built


def test_built_images_pass_check(images):
    for tee, image in images.items():
        result = subprocess.run(
            [SCM, "image", "check", "--tee", tee, "--format", "json", str(image)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        report = json.loads(result.stdout)
        assert result.returncode == 0 and report["good"], result.stdout
        assert report["kernel"].startswith("6.")
        subjects = {f["subject"]: f["ok"] for f in report["findings"]}
        assert subjects["scm"] and subjects["cloud-init"]
        if tee == "tdx":
            assert subjects["tdx_guest"] and subjects["configfs-tsm"]


def nocloud_seed(path: Path) -> None:
    work = path.parent
    (work / "user-data").write_text(USER_DATA)
    (work / "meta-data").write_text("instance-id: scm-boot-test\nlocal-hostname: scm-guest\n")
    subprocess.run(["mkfs.vfat", "-C", "-n", "CIDATA", str(path), "2048"], check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run(["mcopy", "-i", str(path), str(work / "user-data"), str(work / "meta-data"),
                    "::/"], check=True)  # fmt: skip


def marker(console: str, name: str) -> list[str] | None:
    for line in console.splitlines():
        if line.startswith(name + " ") and line.rstrip().endswith(" END"):
            return line.split()[1:-1]
    return None


def test_tdx_image_boots_and_runs_scm(images, tmp_path):
    seed = tmp_path / "seed.img"
    nocloud_seed(seed)
    variables = tmp_path / "vars.fd"
    shutil.copy(OVMF_VARS, variables)
    console = tmp_path / "console.log"
    qemu = subprocess.Popen(
        [
            "qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "max", "-m", "1536",
            "-smp", "2", "-display", "none", "-no-reboot",
            "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,file={variables}",
            "-drive", f"file={images['tdx']},if=virtio,format=qcow2,snapshot=on",
            "-drive", f"file={seed},if=virtio,format=raw,readonly=on",
            # A NIC on QEMU's own isolated network: DHCP works, nothing leaves the host.
            "-nic", "user,restrict=on,model=virtio-net-pci",
            "-serial", f"file:{console}",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + BOOT_DEADLINE_SECONDS
        text = ""
        while time.monotonic() < deadline and qemu.poll() is None:
            text = console.read_text(errors="replace") if console.exists() else ""
            if "SCM-CLOUD-INIT-FINISHED" in text:
                break
            time.sleep(2)
        assert "SCM-CLOUD-INIT-FINISHED" in text, text[-3000:]
    finally:
        qemu.kill()
        qemu.wait()
    text = text.replace("\r", "")
    inspect = marker(text, "SCM-INSPECT")
    assert inspect, text[-3000:]
    report = json.loads(base64.b64decode(inspect[0]))
    assert report["schema"] == "scm.platform/v1"
    assert report["tdx"]["guest"] is False  # TCG, not a trust domain
    assert report["cpu"]["vendor"] is not None
    quote = marker(text, "SCM-QUOTE")
    assert quote and quote[0] != "0"  # no quote interface outside a TD...
    error = base64.b64decode(quote[1]).decode()
    assert error.startswith("scm: error: no TEE quote interface")  # ...said in one line
    assert len(error.strip().splitlines()) == 1
