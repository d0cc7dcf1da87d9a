"""``scm kube`` as an operator runs it: real processes, signals, one-line errors."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.kube.kubelet_double import KubeletDouble
from tests.tls import make_tls

SCM = shutil.which("scm", path=str(Path(sys.executable).parent)) or "scm"


def scm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCM, *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("kube", "device-plugin", "--root", "/does/not/exist"), "does not exist"),
        (
            ("kube", "node-agent", "--root", "/", "--epc-registration", "node-status"),
            "needs the node's name: set --node-name or SCM_KUBE_NODE_NAME",
        ),
        (("kube", "webhook", "--tls-cert", "/no/cert", "--tls-key", "/no/key"), "does not exist"),
        (
            ("kube", "webhook", "--tls-cert", __file__, "--tls-key", __file__),
            "are not a PEM certificate and its matching private key",
        ),
    ],
)
def test_bad_input_is_one_line_and_non_zero(args: tuple[str, ...], message: str) -> None:
    result = scm(*args)
    assert result.returncode != 0
    assert result.stderr.startswith("scm: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1


def test_device_plugin_registers_and_stops_cleanly_on_sigterm(host_root, tmp_path: Path) -> None:
    kubelet_dir = tmp_path / "k"

    async def main() -> None:
        kubelet = KubeletDouble(kubelet_dir)
        await kubelet.start()
        process = await asyncio.create_subprocess_exec(
            SCM,
            "kube",
            "device-plugin",
            "--root",
            str(host_root("tdx-host")),
            "--kubelet-dir",
            str(kubelet_dir),
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await kubelet.wait_for_devices("tdx.intel.com/keys", "Healthy", 63, timeout=20)
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 10) == 0
            await kubelet.wait_stream_ended("tdx.intel.com/keys")
            assert [p.name for p in kubelet_dir.iterdir()] == ["kubelet.sock"]
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await kubelet.stop()

    asyncio.run(main())


def test_webhook_serves_health_over_tls_until_sigterm(tmp_path: Path) -> None:
    tls = make_tls(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["kube", "webhook", "--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    process = subprocess.Popen(
        [SCM, *args, "--host", "127.0.0.1", "--port", str(port)], stderr=subprocess.PIPE
    )
    try:
        context = ssl.create_default_context(cafile=tls.ca)
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(
                    f"https://127.0.0.1:{port}/healthz", context=context, timeout=2
                ) as response:
                    assert response.read() == b"ok\n"
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
