"""The ``[kube]`` settings table (``SCM_KUBE_*`` variables): node agent and webhook knobs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scm.errors import ConfigError

DEFAULT_KUBELET_DIR = Path("/var/lib/kubelet/device-plugins")
DEFAULT_FEATURES_FILE = Path("/etc/kubernetes/node-feature-discovery/features.d/scm-sgx-tdx")


@dataclass(frozen=True)
class KubeSettings:
    """What the node agent and the webhook read from ``[kube]``."""

    kubelet_dir: Path = DEFAULT_KUBELET_DIR
    # How many containers may share /dev/sgx_enclave (and /dev/sgx_provision) on one node.
    sgx_shares: int = 110
    # How often the host is re-read and the kubelet socket checked, in seconds.
    poll_interval: float = 5.0
    # "nfd": keep the NFD features file current; "node-status": patch the Node object.
    epc_registration: str = "nfd"
    features_file: Path = DEFAULT_FEATURES_FILE
    node_name: str = ""
    webhook_host: str = "0.0.0.0"
    webhook_port: int = 8443

    def __post_init__(self) -> None:
        # A negative or NaN poll interval would spin the loops; NaN fails both comparisons.
        if not 0 < self.poll_interval <= 3600:
            raise ConfigError(
                "kube.poll_interval must be over 0 and at most 3600 seconds, "
                f"not {self.poll_interval}"
            )
        if self.sgx_shares < 0:
            raise ConfigError(f"kube.sgx_shares must not be negative, not {self.sgx_shares}")
        if not 0 <= self.webhook_port <= 65535:
            raise ConfigError(f"kube.webhook_port must be 0 to 65535, not {self.webhook_port}")
