"""How an SGX pod is mutated, compatibly with Intel's SGX admission webhook.

Every change is made only where it is missing, and each one is recorded as a JSON patch
operation, so a pod that already carries every change yields an empty patch: reinvocation
and retries never double anything.
"""

from __future__ import annotations

import copy
from typing import Any

from scm.errors import InputError
from scm.kube.quantity import format_bytes, whole_quantity
from scm.kube.resources import SGX_ENCLAVE, SGX_EPC, SGX_PROVISION

QUOTE_PROVIDER = "sgx.intel.com/quote-provider"
EPC_ANNOTATION = "sgx.intel.com/epc"
AESMD = "aesmd"
AESMD_VOLUME = "aesmd-socket"
AESMD_SOCKET_DIR = "/var/run/aesmd"
AESMD_ENV = "SGX_AESM_ADDR"

Pod = dict[str, Any]


class PodRejected(InputError):
    """The pod cannot be admitted as it is; the message says how to fix it."""


class _Patch:
    """Changes a document in place and records each change as an RFC 6902 operation."""

    def __init__(self) -> None:
        self.operations: list[dict[str, Any]] = []

    def member(self, parent: dict[str, Any], key: str, path: str, default: Any) -> Any:
        """``parent[key]``, first set to ``default`` when it is missing or null."""
        if parent.get(key) is None:
            self.put(parent, key, path, default)
        return parent[key]

    def put(self, parent: dict[str, Any], key: str, path: str, value: Any) -> None:
        parent[key] = value
        # A snapshot: the value may be filled further by later operations of its own.
        self.operations.append(
            {"op": "add", "path": f"{path}/{_escape(key)}", "value": copy.deepcopy(value)}
        )

    def append(self, parent: list[Any], path: str, value: Any) -> None:
        parent.append(value)
        self.operations.append({"op": "add", "path": f"{path}/-", "value": copy.deepcopy(value)})


def pod_patch(pod: Pod) -> list[dict[str, Any]]:
    """Mutate ``pod`` in place to use SGX; return the JSON patch that does the same.

    The patch is empty when nothing is missing (or the pod asks for no SGX at all).
    """
    containers = _containers(pod)
    metadata = _mapping(pod.get("metadata"), "metadata")
    annotations = _mapping(metadata.get("annotations"), "metadata.annotations")
    provider = annotations.get(QUOTE_PROVIDER)
    names = [c.get("name") for c in containers]
    if provider is not None and (not isinstance(provider, str) or not provider):
        raise PodRejected(f"annotation {QUOTE_PROVIDER} must be a container name or '{AESMD}'")
    if provider is not None and provider != AESMD and provider not in names:
        raise PodRejected(
            f"annotation {QUOTE_PROVIDER} names container {provider!r}, which this pod does not "
            f"have (containers: {', '.join(map(str, names))}): name the container that "
            f"generates quotes, or '{AESMD}' to use the aesmd socket"
        )
    epc = {i: n for i, c in enumerate(containers) if (n := _container_epc(c)) is not None}
    if not epc:
        return []

    patch = _Patch()
    for index in epc:
        _ensure_resource(patch, containers[index], index, SGX_ENCLAVE)
    if provider in names:
        index = names.index(provider)
        _ensure_resource(patch, containers[index], index, SGX_PROVISION)
    if provider == AESMD:
        sidecar = names.index(AESMD) if AESMD in names else None
        _ensure_aesmd_volume(patch, pod, in_memory=sidecar is not None)
        for index in sorted(set(epc) | ({sidecar} if sidecar is not None else set())):
            path = f"/spec/containers/{index}"
            mount = {"name": AESMD_VOLUME, "mountPath": AESMD_SOCKET_DIR}
            _ensure_named(patch, containers[index], "volumeMounts", path, mount)
            if index != sidecar:
                _ensure_named(
                    patch, containers[index], "env", path, {"name": AESMD_ENV, "value": "1"}
                )
    metadata = patch.member(pod, "metadata", "", {})
    annotations = patch.member(metadata, "annotations", "/metadata", {})
    total = format_bytes(sum(epc.values()))
    if annotations.get(EPC_ANNOTATION) != total:
        patch.put(annotations, EPC_ANNOTATION, "/metadata/annotations", total)
    return patch.operations


def _containers(pod: Pod) -> list[dict[str, Any]]:
    if not isinstance(pod.get("spec"), dict):
        raise PodRejected("the pod has no spec")
    spec: dict[str, Any] = pod["spec"]
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise PodRejected("the pod has no spec.containers")
    for container in containers:
        if not isinstance(container, dict):
            raise PodRejected("each of spec.containers must be an object")
        resources = _mapping(container.get("resources"), "resources")
        for key in ("limits", "requests"):
            _mapping(resources.get(key), f"resources.{key}")
        for key in ("env", "volumeMounts"):
            if container.get(key) is not None and not isinstance(container[key], list):
                raise PodRejected(f"container {container.get('name')!r}: {key} must be a list")
    if spec.get("volumes") is not None and not isinstance(spec["volumes"], list):
        raise PodRejected("spec.volumes must be a list")
    return containers


def _container_epc(container: dict[str, Any]) -> int | None:
    """The EPC a container asks for, in bytes; None when it asks for none."""
    resources = container.get("resources") or {}
    limit = (resources.get("limits") or {}).get(SGX_EPC)
    request = (resources.get("requests") or {}).get(SGX_EPC)
    if limit is None and request is None:
        return None
    name = container.get("name")
    try:
        limit_bytes = None if limit is None else whole_quantity(limit)
        request_bytes = None if request is None else whole_quantity(request)
    except InputError as exc:
        raise PodRejected(
            f"container {name!r}: {SGX_EPC} {exc}: give it in whole bytes, e.g. 64Mi"
        ) from None
    if limit_bytes is not None and request_bytes is not None and limit_bytes != request_bytes:
        raise PodRejected(
            f"container {name!r}: {SGX_EPC} requests ({request}) must equal its limits "
            f"({limit}): set both to the same value, or set only limits"
        )
    return limit_bytes if limit_bytes is not None else request_bytes


def _ensure_resource(patch: _Patch, container: dict[str, Any], index: int, name: str) -> None:
    path = f"/spec/containers/{index}"
    resources = patch.member(container, "resources", path, {})
    for key in ("limits", "requests"):
        values = patch.member(resources, key, f"{path}/resources", {})
        if name not in values:
            patch.put(values, name, f"{path}/resources/{key}", "1")


def _ensure_aesmd_volume(patch: _Patch, pod: Pod, in_memory: bool) -> None:
    volumes = patch.member(pod["spec"], "volumes", "/spec", [])
    if any(isinstance(v, dict) and v.get("name") == AESMD_VOLUME for v in volumes):
        return
    if in_memory:
        source: dict[str, Any] = {"emptyDir": {"medium": "Memory"}}
    else:
        source = {"hostPath": {"path": AESMD_SOCKET_DIR, "type": "DirectoryOrCreate"}}
    patch.append(volumes, "/spec/volumes", {"name": AESMD_VOLUME, **source})


def _ensure_named(
    patch: _Patch, container: dict[str, Any], key: str, path: str, item: dict[str, Any]
) -> None:
    """Add ``item`` to the list ``container[key]`` unless an entry of that name is there."""
    items = patch.member(container, key, path, [])
    if not any(isinstance(e, dict) and e.get("name") == item["name"] for e in items):
        patch.append(items, f"{path}/{key}", item)


def _escape(key: str) -> str:
    """A JSON pointer token (RFC 6901): "sgx.intel.com/epc" becomes "sgx.intel.com~1epc"."""
    return key.replace("~", "~0").replace("/", "~1")


def _mapping(value: Any, what: str) -> dict[str, Any]:
    """``value`` if it is an object, {} if it is absent (null); else the pod is rejected."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PodRejected(f"{what} must be an object")
    return value
