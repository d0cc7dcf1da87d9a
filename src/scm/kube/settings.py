"""The ``[kube]`` settings table (``SCM_KUBE_*`` variables): node agent and webhook knobs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
