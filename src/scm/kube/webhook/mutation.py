"""How an SGX pod is mutated, compatibly with Intel's SGX admission webhook.

Every change is made only where it is missing, and each one is recorded as a JSON patch
operation, so a pod that already carries every change yields an empty patch: reinvocation
and retries never double anything. The pod (as decoded by :mod:`.schema`) is only read:
the patch is built beside it, remembering what it has added, instead of changing a copy.
"""

from __future__ import annotations

from typing import Any

from scm.errors import InputError
from scm.kube.quantity import format_bytes, whole_quantity
from scm.kube.resources import SGX_ENCLAVE, SGX_EPC, SGX_PROVISION
from scm.kube.webhook.schema import Container, Named, NamedItem, Pod, Resources

QUOTE_PROVIDER = "sgx.intel.com/quote-provider"
EPC_ANNOTATION = "sgx.intel.com/epc"
# containers/nri-plugins sgx-epc: "epc-limit.nri.io/container.<name>": "<bytes>".
NRI_EPC_PREFIX = "epc-limit.nri.io/container."
_NRI_NAME_PREFIX = NRI_EPC_PREFIX.split("/", 1)[1]  # an annotation's name part: "container."
AESMD = "aesmd"
AESMD_VOLUME = "aesmd-socket"
AESMD_SOCKET_DIR = "/var/run/aesmd"
AESMD_ENV = "SGX_AESM_ADDR"

Operation = dict[str, Any]

# JSON pointer tokens (RFC 6901) of the resources added.
_TOKENS = {name: name.replace("/", "~1") for name in (SGX_ENCLAVE, SGX_PROVISION)}
# The entries added by name, copied into each operation.
_MOUNT = {"name": AESMD_VOLUME, "mountPath": AESMD_SOCKET_DIR}
_ENV = {"name": AESMD_ENV, "value": "1"}


class PodRejected(InputError):
    """The pod cannot be admitted as it is; the message says how to fix it."""


def pod_patch(pod: Pod) -> list[Operation]:
    """The JSON patch (RFC 6902 operations) that makes ``pod`` use SGX.

    Containers and init containers are treated alike. The patch is empty when nothing is
    missing (or the pod asks for no SGX at all).
    """
    spec = pod.spec
    if spec is None:
        raise PodRejected("the pod has no spec")
    if not spec.containers:
        raise PodRejected("the pod has no spec.containers")
    # App containers, then init containers: an index below app_count is an app container.
    containers = spec.containers + (spec.init_containers or [])
    app_count = len(spec.containers)
    annotations = pod.metadata.annotations if pod.metadata is not None else None
    provider = annotations.get(QUOTE_PROVIDER) if annotations is not None else None
    names = [container.name for container in containers]
    if provider is not None and (not isinstance(provider, str) or not provider):
        raise PodRejected(f"annotation {QUOTE_PROVIDER} must be a container name or '{AESMD}'")
    if provider is not None and provider != AESMD and provider not in names:
        raise PodRejected(
            f"annotation {QUOTE_PROVIDER} names container {provider!r}, which this pod does not "
            f"have (containers: {', '.join(map(str, names))}): name the container that "
            f"generates quotes, or '{AESMD}' to use the aesmd socket"
        )
    epc: dict[int, int] = {}  # container index: bytes, for every container asking for EPC
    for index, container in enumerate(containers):
        if container.resources is not None:
            size = _container_epc(container)
            if size is not None:
                epc[index] = size
    if not epc:
        return []
    wanted = {EPC_ANNOTATION: format_bytes(_pod_epc(containers, app_count, epc))}
    # The sgx-epc NRI plugin sets each container's cgroup misc sgx_epc limit from these.
    for index, size in epc.items():
        wanted[_nri_annotation(names[index])] = str(size)

    operations: list[Operation] = []
    for index in epc:
        path = _path(index, app_count)
        _ensure_resource(operations, path, containers[index].resources, SGX_ENCLAVE, False)
    if provider is not None and provider in names:  # never a nameless container by default
        index = names.index(provider)
        # An SGX container's resources, limits and requests exist by now: just patched.
        path, resources = _path(index, app_count), containers[index].resources
        _ensure_resource(operations, path, resources, SGX_PROVISION, index in epc)
    if provider == AESMD:
        sidecar = names.index(AESMD) if AESMD in names else None
        _ensure_aesmd_volume(operations, spec.volumes, in_memory=sidecar is not None)
        clients = list(epc)  # ascending: filled in container order
        if sidecar is not None and sidecar not in epc:
            clients = sorted([*clients, sidecar])
        for index in clients:
            path, container = _path(index, app_count), containers[index]
            _ensure_named(operations, container.volume_mounts, f"{path}/volumeMounts", _MOUNT)
            if index != sidecar:
                _ensure_named(operations, container.env, f"{path}/env", _ENV)
    if pod.metadata is None:
        operations.append(_add("/metadata", {}))
    if annotations is None:
        operations.append(_add("/metadata/annotations", {}))
        annotations = {}
    for key, value in wanted.items():
        if annotations.get(key) != value:
            operations.append(_add(f"/metadata/annotations/{_escape(key)}", value))
    return operations


def _path(index: int, app_count: int) -> str:
    """The JSON pointer to container ``index`` (app containers first, then init containers)."""
    if index < app_count:
        return f"/spec/containers/{index}"
    return f"/spec/initContainers/{index - app_count}"


def _add(path: str, value: Any) -> Operation:
    return {"op": "add", "path": path, "value": value}


def _ensure_resource(
    operations: list[Operation], path: str, resources: Resources | None, name: str, patched: bool
) -> None:
    """Add resource ``name`` to the limits and requests of the container at ``path`` where
    missing; ``patched``: an earlier call made its resources, limits and requests exist."""
    if resources is None:
        limits = requests = None
        if not patched:
            operations.append(_add(f"{path}/resources", {}))
    else:
        limits, requests = resources.limits, resources.requests
    token = _TOKENS[name]
    for key, values in (("limits", limits), ("requests", requests)):
        if values is None and not patched:
            operations.append(_add(f"{path}/resources/{key}", {}))
        if values is None or name not in values:
            operations.append(_add(f"{path}/resources/{key}/{token}", "1"))


def _pod_epc(containers: list[Container], app_count: int, epc: dict[int, int]) -> int:
    """The pod's EPC as the scheduler counts a resource: the larger of the app containers
    (plus sidecars) and the peak of the init phase, where init containers run one at a time
    beside the sidecars started before them (an init container with restartPolicy Always
    is a native sidecar: it keeps running beside the app)."""
    app = sidecars = peak = 0
    for index, size in epc.items():
        if index < app_count:
            app += size
    for index in range(app_count, len(containers)):
        size = epc.get(index, 0)
        if containers[index].restart_policy == "Always":
            sidecars += size
            peak = max(peak, sidecars)
        else:
            peak = max(peak, sidecars + size)
    return max(app + sidecars, peak)


def _nri_annotation(name: Any) -> str:
    """The sgx-epc NRI plugin's annotation for one container; its name part (after the
    prefix) must be a qualified name of at most 63 characters, or the API server refuses
    the pod."""
    if not isinstance(name, str) or not name:
        raise PodRejected("every container asking for sgx.intel.com/epc needs a name")
    key = f"{NRI_EPC_PREFIX}{name}"
    if len(_NRI_NAME_PREFIX) + len(name) > 63:
        raise PodRejected(
            f"container {name!r}: its EPC limit goes in the annotation {key}, whose name part "
            f"may have 63 characters: shorten the container name to at most "
            f"{63 - len(_NRI_NAME_PREFIX)} characters"
        )
    return key


def _container_epc(container: Container) -> int | None:
    """The EPC a container asks for, in bytes; None when it asks for none."""
    resources = container.resources
    if resources is None:
        return None
    limit = (resources.limits or {}).get(SGX_EPC)
    request = (resources.requests or {}).get(SGX_EPC)
    if limit is None and request is None:
        return None
    name = container.name
    if limit is None:
        # kube-apiserver would refuse it after the patch ("Limit must be set for non
        # overcommitable resources"); say here what to change.
        raise PodRejected(
            f"container {name!r}: {SGX_EPC} is in resources.requests ({request}) only; "
            f"extended resources cannot be overcommitted, so set resources.limits[{SGX_EPC}] "
            f"to {request} as well (or set only limits)"
        )
    try:
        limit_bytes = whole_quantity(limit)
        request_bytes = None if request is None else whole_quantity(request)
    except InputError as exc:
        raise PodRejected(
            f"container {name!r}: {SGX_EPC} {exc}: give it in whole bytes, e.g. 64Mi"
        ) from None
    if request_bytes is not None and limit_bytes != request_bytes:
        raise PodRejected(
            f"container {name!r}: {SGX_EPC} requests ({request}) must equal its limits "
            f"({limit}): set both to the same value, or set only limits"
        )
    return limit_bytes


def _ensure_aesmd_volume(
    operations: list[Operation], volumes: list[NamedItem] | None, in_memory: bool
) -> None:
    if volumes is None:
        operations.append(_add("/spec/volumes", []))
    elif _has_named(volumes, AESMD_VOLUME):
        return
    if in_memory:
        source: dict[str, Any] = {"emptyDir": {"medium": "Memory"}}
    else:
        source = {"hostPath": {"path": AESMD_SOCKET_DIR, "type": "DirectoryOrCreate"}}
    operations.append(_add("/spec/volumes/-", {"name": AESMD_VOLUME, **source}))


def _ensure_named(
    operations: list[Operation], items: list[NamedItem] | None, path: str, item: dict[str, Any]
) -> None:
    """Add ``item`` to the list at ``path`` (``items``) unless an entry of that name is there."""
    if items is None:
        operations.append(_add(path, []))
    elif _has_named(items, item["name"]):
        return
    operations.append(_add(f"{path}/-", dict(item)))


def _has_named(items: list[NamedItem], name: str) -> bool:
    # A loop rather than any() over a generator: it runs a few times in every review.
    for item in items:  # noqa: SIM110
        if isinstance(item, Named) and item.name == name:
            return True
    return False


def _escape(key: str) -> str:
    """A JSON pointer token (RFC 6901): "sgx.intel.com/epc" becomes "sgx.intel.com~1epc"."""
    return key.replace("~", "~0").replace("/", "~1")
