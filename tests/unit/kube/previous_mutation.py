"""The pod mutation as it was before Build 7 (dict-based, mutating a copy of the pod): kept
unchanged as the oracle the typed, copy-free mutation is compared with, pod for pod.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scm.errors import InputError
from scm.kube.quantity import format_bytes, whole_quantity
from scm.kube.resources import SGX_ENCLAVE, SGX_EPC, SGX_PROVISION

QUOTE_PROVIDER = "sgx.intel.com/quote-provider"
EPC_ANNOTATION = "sgx.intel.com/epc"
# containers/nri-plugins sgx-epc: "epc-limit.nri.io/container.<name>": "<bytes>".
NRI_EPC_PREFIX = "epc-limit.nri.io/container."
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
        self.operations.append(
            {"op": "add", "path": f"{path}/{_escape(key)}", "value": _snapshot(value)}
        )

    def append(self, parent: list[Any], path: str, value: Any) -> None:
        parent.append(value)
        self.operations.append({"op": "add", "path": f"{path}/-", "value": _snapshot(value)})


def _snapshot(value: Any) -> Any:
    """The value as it is now. Only containers added empty are filled later (each filling is
    an operation of its own), and what is added is never changed afterwards, so a shallow
    copy is a faithful snapshot: no deepcopy, which cost more than the rest of a review."""
    if isinstance(value, dict | list):
        return value.copy()
    return value


@dataclass(frozen=True)
class _Slot:
    """One container or init container, and where the patch finds it."""

    path: str
    container: dict[str, Any]
    init: bool
    # An init container with restartPolicy Always runs beside the app (a native sidecar).
    sidecar: bool


def pod_patch(pod: Pod) -> list[dict[str, Any]]:
    """Mutate ``pod`` in place to use SGX; return the JSON patch that does the same.

    Containers and init containers are treated alike. The patch is empty when nothing is
    missing (or the pod asks for no SGX at all).
    """
    slots = _containers(pod)
    metadata = _mapping(pod.get("metadata"), "metadata")
    annotations = _mapping(metadata.get("annotations"), "metadata.annotations")
    provider = annotations.get(QUOTE_PROVIDER)
    names = [slot.container.get("name") for slot in slots]
    if provider is not None and (not isinstance(provider, str) or not provider):
        raise PodRejected(f"annotation {QUOTE_PROVIDER} must be a container name or '{AESMD}'")
    if provider is not None and provider != AESMD and provider not in names:
        raise PodRejected(
            f"annotation {QUOTE_PROVIDER} names container {provider!r}, which this pod does not "
            f"have (containers: {', '.join(map(str, names))}): name the container that "
            f"generates quotes, or '{AESMD}' to use the aesmd socket"
        )
    epc = {
        i: n for i, slot in enumerate(slots) if (n := _container_epc(slot.container)) is not None
    }
    if not epc:
        return []
    nri_keys = {i: _nri_annotation(names[i]) for i in epc}

    patch = _Patch()
    for index in epc:
        _ensure_resource(patch, slots[index], SGX_ENCLAVE)
    # Mended here as in the current implementation (the one change to this oracle): a
    # nameless container matched the absent annotation and got provision.
    if provider is not None and provider in names:
        _ensure_resource(patch, slots[names.index(provider)], SGX_PROVISION)
    if provider == AESMD:
        sidecar = names.index(AESMD) if AESMD in names else None
        _ensure_aesmd_volume(patch, pod, in_memory=sidecar is not None)
        for index in sorted(set(epc) | ({sidecar} if sidecar is not None else set())):
            slot = slots[index]
            mount = {"name": AESMD_VOLUME, "mountPath": AESMD_SOCKET_DIR}
            _ensure_named(patch, slot.container, "volumeMounts", slot.path, mount)
            if index != sidecar:
                env = {"name": AESMD_ENV, "value": "1"}
                _ensure_named(patch, slot.container, "env", slot.path, env)
    metadata = patch.member(pod, "metadata", "", {})
    annotations = patch.member(metadata, "annotations", "/metadata", {})
    wanted = {EPC_ANNOTATION: format_bytes(_pod_epc(slots, epc))}
    # The sgx-epc NRI plugin sets each container's cgroup misc sgx_epc limit from these.
    wanted.update((nri_keys[i], str(epc[i])) for i in epc)
    for key, value in wanted.items():
        if annotations.get(key) != value:
            patch.put(annotations, key, "/metadata/annotations", value)
    return patch.operations


def _pod_epc(slots: list[_Slot], epc: dict[int, int]) -> int:
    """The pod's EPC as the scheduler counts a resource: the larger of the app containers
    (plus sidecars) and the peak of the init phase, where init containers run one at a time
    beside the sidecars started before them."""
    app = sum(n for i, n in epc.items() if not slots[i].init)
    sidecars = peak = 0
    for i, slot in enumerate(slots):
        if not slot.init:
            continue
        if slot.sidecar:
            sidecars += epc.get(i, 0)
            peak = max(peak, sidecars)
        else:
            peak = max(peak, sidecars + epc.get(i, 0))
    return max(app + sidecars, peak)


def _nri_annotation(name: Any) -> str:
    """The sgx-epc NRI plugin's annotation for one container; its name part (after the
    prefix) must be a qualified name of at most 63 characters, or the API server refuses
    the pod."""
    if not isinstance(name, str) or not name:
        raise PodRejected("every container asking for sgx.intel.com/epc needs a name")
    key = f"{NRI_EPC_PREFIX}{name}"
    if len(key.split("/", 1)[1]) > 63:
        raise PodRejected(
            f"container {name!r}: its EPC limit goes in the annotation {key}, whose name part "
            f"may have 63 characters: shorten the container name to at most "
            f"{63 - len('container.')} characters"
        )
    return key


def _containers(pod: Pod) -> list[_Slot]:
    if not isinstance(pod.get("spec"), dict):
        raise PodRejected("the pod has no spec")
    spec: dict[str, Any] = pod["spec"]
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise PodRejected("the pod has no spec.containers")
    init_containers = spec.get("initContainers")
    if init_containers is None:
        init_containers = []
    elif not isinstance(init_containers, list):
        raise PodRejected("spec.initContainers must be a list")
    slots = [_Slot(f"/spec/containers/{i}", c, False, False) for i, c in enumerate(containers)]
    for i, c in enumerate(init_containers):
        sidecar = isinstance(c, dict) and c.get("restartPolicy") == "Always"
        slots.append(_Slot(f"/spec/initContainers/{i}", c, True, sidecar))
    for slot in slots:
        container = slot.container
        if not isinstance(container, dict):
            raise PodRejected("each of spec.containers and spec.initContainers must be an object")
        resources = _mapping(container.get("resources"), "resources")
        for key in ("limits", "requests"):
            _mapping(resources.get(key), f"resources.{key}")
        for key in ("env", "volumeMounts"):
            if container.get(key) is not None and not isinstance(container[key], list):
                raise PodRejected(f"container {container.get('name')!r}: {key} must be a list")
    if spec.get("volumes") is not None and not isinstance(spec["volumes"], list):
        raise PodRejected("spec.volumes must be a list")
    return slots


def _container_epc(container: dict[str, Any]) -> int | None:
    """The EPC a container asks for, in bytes; None when it asks for none."""
    resources = container.get("resources") or {}
    limit = (resources.get("limits") or {}).get(SGX_EPC)
    request = (resources.get("requests") or {}).get(SGX_EPC)
    if limit is None and request is None:
        return None
    name = container.get("name")
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


def _ensure_resource(patch: _Patch, slot: _Slot, name: str) -> None:
    path = slot.path
    resources = patch.member(slot.container, "resources", path, {})
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
