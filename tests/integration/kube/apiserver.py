"""An API-server emulator on loopback: the Node endpoints the node agent reads and patches.

It answers like kube-apiserver does for ``GET`` and ``PATCH /api/v1/nodes/{name}`` and the
``/status`` subresource with a JSON merge patch (RFC 7386): it applies the patch to the stored
Node and returns the whole object. What the real server does that an agent can trip over is
done here too: every write bumps ``metadata.resourceVersion``; quantities come back in
canonical form ("2000000" is stored as "2M"); a status with capacity but no allocatable gets
allocatable defaulted from capacity; a Node can be deleted and registered again (a new uid,
its status empty until its kubelet reports). ``kubelet_sync`` does what a kubelet's status
update does to extended resources: copies them from capacity to allocatable. Every request is
recorded so tests can assert what was sent.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from lightkube import AsyncClient, KubeConfig

MERGE_PATCH = "application/merge-patch+json"
TOKEN = "node-agent-service-account-token"


def client_for(url: str) -> AsyncClient:
    """A lightkube client configured as a service account token user of the emulator."""
    config = KubeConfig.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": url}}],
            "users": [{"name": "scm-node-agent", "user": {"token": TOKEN}}],
            "contexts": [
                {"name": "emulator", "context": {"cluster": "emulator", "user": "scm-node-agent"}}
            ],
            "current-context": "emulator",
        }
    )
    return AsyncClient(config=config)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    content_type: str
    body: Any


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


_DECIMAL = re.compile(r"(\d+)")
_DECIMAL_SUFFIXES = ["", "k", "M", "G", "T", "P", "E"]


def canonical(quantity: str) -> str:
    """A plain decimal quantity as kube-apiserver stores it: "2000000" becomes "2M"."""
    if _DECIMAL.fullmatch(quantity) is None:
        return quantity
    number, power = int(quantity), 0
    while number and number % 1000 == 0 and power < len(_DECIMAL_SUFFIXES) - 1:
        number, power = number // 1000, power + 1
    return f"{number}{_DECIMAL_SUFFIXES[power]}"


class ApiServerEmulator:
    def __init__(self, *node_names: str) -> None:
        self._versions = itertools.count(1000)
        self.nodes: dict[str, dict[str, Any]] = {}
        for name in node_names:
            self.register_node(name)
            self.nodes[name]["status"] = {
                "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"},
                "allocatable": {"cpu": "2", "memory": "7Gi", "pods": "110"},
            }
        self.pods: list[dict[str, Any]] = []
        self.requests: list[Recorded] = []
        self.fail_with: int | None = None
        self.app = web.Application()
        self.app.router.add_get("/api/v1/nodes/{name}", self._get)
        self.app.router.add_get("/api/v1/nodes/{name}/status", self._get)
        self.app.router.add_patch("/api/v1/nodes/{name}", self._patch)
        self.app.router.add_patch("/api/v1/nodes/{name}/status", self._patch)
        self.app.router.add_get("/api/v1/nodes", self._list)
        self.app.router.add_get("/api/v1/pods", self._list)
        self._runner: web.AppRunner | None = None

    def register_node(self, name: str) -> None:
        """A kubelet (re-)registering its Node: a new object whose status starts empty."""
        self.nodes[name] = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "uid": str(uuid.uuid4()),
                "labels": {"kubernetes.io/hostname": name},
            },
            "status": {},
        }
        self._written(self.nodes[name])

    def delete_node(self, name: str) -> None:
        del self.nodes[name]

    def kubelet_sync(self, name: str) -> None:
        """The kubelet's status update: machine capacity, and allocatable from capacity."""
        status = self.nodes[name]["status"]
        capacity = status.setdefault("capacity", {})
        capacity.update({"cpu": "2", "memory": "8Gi", "pods": "110"})
        allocatable = status.setdefault("allocatable", {})
        for key in [k for k in allocatable if "/" in k and k not in capacity]:
            del allocatable[key]
        allocatable.update({k: v for k, v in capacity.items() if "/" in k})
        allocatable.update({"cpu": "2", "memory": "7Gi", "pods": "110"})
        self._written(self.nodes[name])

    def _written(self, node: dict[str, Any]) -> None:
        status = node["status"]
        for key in ("capacity", "allocatable"):
            if key in status:
                status[key] = {k: canonical(v) for k, v in status[key].items()}
        # Defaulting (SetDefaults_NodeStatus): no allocatable at all means all of capacity.
        if "capacity" in status and "allocatable" not in status:
            status["allocatable"] = dict(status["capacity"])
        node["metadata"]["resourceVersion"] = str(next(self._versions))

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _get(self, request: web.Request) -> web.Response:
        self.requests.append(Recorded("GET", request.path, "", None))
        refused = self._refusal(request)
        if refused is not None:
            return refused
        return web.json_response(self.nodes[request.match_info["name"]])

    def _refusal(self, request: web.Request) -> web.Response | None:
        """The error the real server answers before it looks at the request's body."""
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _status(401, "Unauthorized", "Unauthorized")
        if self.fail_with is not None:
            return _status(self.fail_with, "InternalError", "etcdserver: request timed out")
        name = request.match_info["name"]
        if name not in self.nodes:
            return _status(404, "NotFound", f'nodes "{name}" not found')
        return None

    async def _patch(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.requests.append(Recorded("PATCH", request.path, request.content_type, body))
        refused = self._refusal(request)
        if refused is not None:
            return refused
        name = request.match_info["name"]
        if request.content_type != MERGE_PATCH:
            return _status(415, "UnsupportedMediaType", request.content_type)
        node = self.nodes[name]
        if request.path.endswith("/status"):
            # The status subresource ignores everything but status, like the real one.
            node["status"] = merge(node["status"], body.get("status", {}))
        else:
            node["metadata"] = merge(node["metadata"], body.get("metadata", {}))
        self._written(node)
        return web.json_response(node)

    async def _list(self, request: web.Request) -> web.Response:
        """``GET /api/v1/nodes`` and ``/api/v1/pods`` (all namespaces): a v1 List."""
        self.requests.append(Recorded("GET", request.path, "", None))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _status(401, "Unauthorized", "Unauthorized")
        if self.fail_with is not None:
            return _status(self.fail_with, "InternalError", "etcdserver: request timed out")
        nodes = request.path.endswith("/nodes")
        items = list(self.nodes.values()) if nodes else self.pods
        kind = "NodeList" if nodes else "PodList"
        return web.json_response(
            {"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items}
        )


def _status(code: int, reason: str, message: str) -> web.Response:
    document = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.json_response(document, status=code)
