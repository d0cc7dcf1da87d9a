"""The ``[scm]`` section of nova.conf."""

from __future__ import annotations

from oslo_config import cfg

GROUP = "scm"

OPTS = [
    cfg.StrOpt(
        "host_root",
        default="/",
        help="Read /proc, /sys and /dev below this directory when discovering SGX and TDX.",
    ),
    cfg.IntOpt(
        "sgx_epc_mb",
        help="EPC in MiB to offer guests instead of the discovered total; may not exceed it.",
    ),
    cfg.IntOpt(
        "reserved_sgx_epc_mb",
        default=0,
        help="EPC in MiB kept back from guests (reported as reserved to placement).",
    ),
]


def register(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(OPTS, group=GROUP)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """For oslo-config-generator (entry point ``oslo.config.opts``)."""
    return [(GROUP, OPTS)]
