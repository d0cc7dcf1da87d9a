"""Kubernetes: the SGX/TDX device plugin, EPC registration, the node agent, the SGX webhook."""
