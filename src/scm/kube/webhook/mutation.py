"""How an SGX pod is mutated, compatibly with Intel's SGX admission webhook.

The pod is changed in a copy and the JSON patch is the difference, so a pod that already
carries every change yields an empty patch: reinvocation and retries never double anything.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

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


def pod_patch(pod: Pod) -> list[dict[str, Any]]:
    """The JSON patch (RFC 6902) that makes ``pod`` use SGX, empty when nothing is missing."""
    mutated = mutate_pod(pod)
    if mutated is pod:
        return []
    operations: list[dict[str, Any]] = jsonpatch.make_patch(pod, mutated).patch
    return operations


def mutate_pod(pod: Pod) -> Pod:
    """A mutated copy of ``pod``, or ``pod`` itself when it asks for no SGX at all."""
    containers = _containers(pod)
    metadata = _mapping(pod.get("metadata") or {}, "metadata")
    annotations = _mapping(metadata.get("annotations") or {}, "metadata.annotations")
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
        return pod

    pod = copy.deepcopy(pod)
    containers = pod["spec"]["containers"]
    for index in epc:
        _ensure_resource(containers[index], SGX_ENCLAVE)
    if provider in names:
        _ensure_resource(containers[names.index(provider)], SGX_PROVISION)
    if provider == AESMD:
        sidecar = names.index(AESMD) if AESMD in names else None
        _ensure_aesmd_volume(pod, in_memory=sidecar is not None)
        for index in sorted(set(epc) | ({sidecar} if sidecar is not None else set())):
            _ensure_mount(containers[index])
            if index != sidecar:
                _ensure_env(containers[index], AESMD_ENV, "1")
    metadata = pod.get("metadata") or {}
    pod["metadata"] = metadata
    pod_annotations = metadata.get("annotations") or {}
    pod_annotations[EPC_ANNOTATION] = format_bytes(sum(epc.values()))
    metadata["annotations"] = pod_annotations
    return pod


def _containers(pod: Pod) -> list[dict[str, Any]]:
    spec = _mapping(pod.get("spec"), "spec")
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise PodRejected("the pod has no spec.containers")
    for container in containers:
        _mapping(container, "each of spec.containers")
        resources = _mapping(container.get("resources") or {}, "resources")
        for key in ("limits", "requests"):
            _mapping(resources.get(key) or {}, f"resources.{key}")
        for key in ("env", "volumeMounts"):
            if not isinstance(container.get(key) or [], list):
                raise PodRejected(f"container {container.get('name')!r}: {key} must be a list")
    if not isinstance(spec.get("volumes") or [], list):
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


def _ensure_resource(container: dict[str, Any], name: str) -> None:
    resources = container.get("resources") or {}
    container["resources"] = resources
    for key in ("limits", "requests"):
        values = resources.get(key) or {}
        values.setdefault(name, "1")
        resources[key] = values


def _ensure_aesmd_volume(pod: Pod, in_memory: bool) -> None:
    spec = pod["spec"]
    volumes = spec.get("volumes") or []
    if any(isinstance(v, dict) and v.get("name") == AESMD_VOLUME for v in volumes):
        return
    if in_memory:
        source: dict[str, Any] = {"emptyDir": {"medium": "Memory"}}
    else:
        source = {"hostPath": {"path": AESMD_SOCKET_DIR, "type": "DirectoryOrCreate"}}
    volumes.append({"name": AESMD_VOLUME, **source})
    spec["volumes"] = volumes


def _ensure_mount(container: dict[str, Any]) -> None:
    mounts = container.get("volumeMounts") or []
    if not any(isinstance(m, dict) and m.get("name") == AESMD_VOLUME for m in mounts):
        mounts.append({"name": AESMD_VOLUME, "mountPath": AESMD_SOCKET_DIR})
    container["volumeMounts"] = mounts


def _ensure_env(container: dict[str, Any], name: str, value: str) -> None:
    env = container.get("env") or []
    if not any(isinstance(e, dict) and e.get("name") == name for e in env):
        env.append({"name": name, "value": value})
    container["env"] = env


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PodRejected(f"{what} must be an object")
    return value
