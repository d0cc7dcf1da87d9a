"""A loopback server speaking the part of Glance's image API v2 that openstacksdk uses to
find an image and set properties: version discovery, GET by ID, list by name, JSON-patch
PATCH (``application/openstack-images-v2.1-json-patch``). It records every request."""

from __future__ import annotations

import http.server
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

PATCH_TYPE = "application/openstack-images-v2.1-json-patch"
_IMAGE_PATH = re.compile(r"^/v2/images/([^/?]+)$")


@dataclass
class Glance:
    images: dict[str, dict[str, Any]]
    requests: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def _handler(glance: Glance) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _reply(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            glance.requests.append(("GET", self.path))
            if self.path == "/":
                version = {"id": "v2.16", "status": "CURRENT",
                           "links": [{"href": f"{glance.url}v2/", "rel": "self"}]}  # fmt: skip
                return self._reply(300, {"versions": [version]})
            if match := _IMAGE_PATH.match(self.path):
                image = glance.images.get(match.group(1))
                return self._reply(200, image) if image else self._reply(404, {"message": "no"})
            name = re.search(r"[?&]name=([^&]+)", self.path)
            found = [i for i in glance.images.values() if name and i["name"] == name.group(1)]
            return self._reply(200, {"images": found})

        def do_PATCH(self) -> None:
            glance.requests.append(("PATCH", self.path))
            match = _IMAGE_PATH.match(self.path)
            if self.headers["Content-Type"] != PATCH_TYPE or not match:
                return self._reply(415, {"message": "unsupported media type"})
            image = glance.images[match.group(1)]
            for op in json.loads(self.rfile.read(int(self.headers["Content-Length"]))):
                if op["op"] in ("add", "replace"):
                    image[op["path"].lstrip("/")] = op["value"]
            return self._reply(200, image)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def glance_server(images: dict[str, dict[str, Any]]) -> Iterator[Glance]:
    glance = Glance(images)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(glance))
    glance.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield glance
    finally:
        server.shutdown()
        server.server_close()
