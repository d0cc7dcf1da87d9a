"""The ``[console]`` settings table (``SCM_CONSOLE_*``); command-line options override it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ConsoleSettings:
    """Where ``scm console`` listens and what it shows; every source is optional."""

    listen: str = "127.0.0.1:8480"
    root: Path = Path("/")
    sds: str | None = None  # a running SDS server's --http base URL
    collateral: Path | None = None
    pccs_url: str | None = None
    policy: Path | None = None
    kubeconfig: Path | None = None
    os_cloud: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    token_file: Path | None = None
