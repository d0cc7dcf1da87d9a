"""The AdmissionReview schema: the fields the webhook reads, typed, and nothing else.

kube-apiserver sends the whole pod, but the mutation reads only its annotations, its
containers' and init containers' names, resources, env and volume mounts, and the names of
its volumes. msgspec decodes exactly those into the types below (every other field is
skipped without being built) and refuses any of them that has the wrong JSON type: this is
the one schema of the webhook's peer input, and a refusal names what to fix.

A pod that does not fit is not a malformed review: the review is answered with a denial
(HTTP 200) if it is a pod's creation, and allowed unchanged otherwise, as when the pod is
not read at all; only a body that is not an AdmissionReview gets HTTP 400.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from scm.errors import InputError

# Where a list item may be anything: an object is read for its name only, other JSON
# values are kept as they are (and never match a name). msgspec allows one object type
# and one array type in a union.
Value = list[Any] | str | int | float | bool | None


class Named(msgspec.Struct, gc=False):
    """An env var, volume mount or volume: only its name matters here."""

    name: Any = None


NamedItem = Named | Value


class Resources(msgspec.Struct, gc=False):
    limits: dict[str, Any] | None = None
    requests: dict[str, Any] | None = None


class Container(msgspec.Struct, rename="camel", gc=False):
    name: Any = None
    resources: Resources | None = None
    env: list[NamedItem] | None = None
    volume_mounts: list[NamedItem] | None = None
    # "Always" on an init container makes it a native sidecar, running beside the app.
    restart_policy: Any = None


class Spec(msgspec.Struct, rename="camel", gc=False):
    containers: list[Container] | None = None
    init_containers: list[Container] | None = None
    volumes: list[NamedItem] | None = None


class Metadata(msgspec.Struct, gc=False):
    annotations: dict[str, Any] | None = None


class Pod(msgspec.Struct, gc=False):
    metadata: Metadata | None = None
    spec: Spec | None = None


class Request(msgspec.Struct, gc=False):
    uid: Any = None
    kind: Any = None
    operation: Any = None
    pod: Pod | Value = msgspec.field(default=None, name="object")


class Review(msgspec.Struct, rename="camel", gc=False):
    api_version: Any = None
    kind: Any = None
    request: Request | Value = None


class RawRequest(msgspec.Struct, gc=False):
    """A request whose pod is left as JSON text, decoded only if the review is a pod's
    creation: what the envelope is read as when the pod does not fit the schema."""

    uid: Any = None
    kind: Any = None
    operation: Any = None
    pod: msgspec.Raw = msgspec.field(default=msgspec.Raw(b"null"), name="object")


class RawReview(msgspec.Struct, rename="camel", gc=False):
    api_version: Any = None
    kind: Any = None
    request: RawRequest | Value = None


class MalformedBody(InputError):
    """The body is not JSON at all."""


class MalformedPod(InputError):
    """The pod has a field of the wrong JSON type; the message says which."""


_REVIEW = msgspec.json.Decoder(Review | Value)
_RAW_REVIEW = msgspec.json.Decoder(RawReview | Value)
_POD = msgspec.json.Decoder(Pod | Value)
_ANY = msgspec.json.Decoder()


def decode_review(body: bytes) -> Review | RawReview | Value:
    """The AdmissionReview, or whatever other JSON value the body holds.

    Never raises for a JSON body of the wrong shape (the caller says what is missing):
    MalformedBody only when the body is not JSON. The pod is decoded with the review in
    one pass; only when it does not fit the schema is the review read again with the pod
    left as text (a RawReview), for :func:`pod_of` to refuse it if the review is a pod's
    creation and to ignore it otherwise.
    """
    document: Review | RawReview | Value
    try:
        try:
            document = _REVIEW.decode(body)
        except msgspec.ValidationError:
            document = _RAW_REVIEW.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        # msgspec raises UnicodeDecodeError, not DecodeError, for bytes that are not UTF-8.
        raise MalformedBody("the body is not JSON") from None
    return document


def pod_of(request: Request | RawRequest) -> Pod | None:
    """The request's pod; None when the review carries no JSON object as its pod.

    MalformedPod when a field this webhook reads has the wrong type.
    """
    if isinstance(request, Request):
        pod = request.pod
    else:
        try:
            pod = _POD.decode(request.pod)
        except msgspec.ValidationError as exc:
            raise MalformedPod(_shape_message(str(exc), request.pod)) from None
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            raise MalformedPod("the pod is not valid JSON") from None
    return pod if isinstance(pod, Pod) else None


# msgspec names the offending field as a JSONPath ("... - at `$.spec.containers[0].env`").
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_CONTAINER = re.compile(r"\.spec\.(?:containers|initContainers)\[(?P<index>\d+)\]")
_MESSAGES = {
    ".metadata": "metadata must be an object",
    ".metadata.annotations": "metadata.annotations must be an object",
    ".spec": "the pod has no spec",
    ".spec.containers": "the pod has no spec.containers",
    ".spec.initContainers": "spec.initContainers must be a list",
    ".spec.volumes": "spec.volumes must be a list",
    "[]": "each of spec.containers and spec.initContainers must be an object",
    "[].resources": "resources must be an object",
    "[].resources.limits": "resources.limits must be an object",
    "[].resources.requests": "resources.requests must be an object",
}


def _shape_message(error: str, raw: msgspec.Raw) -> str:
    """A refusal in the words of the field that is wrong, from msgspec's error."""
    match = _AT.search(error)
    path = match["path"] if match else ""
    container = _CONTAINER.match(path)
    key = path
    if container is not None:
        key = "[]" + path[container.end() :]
        for field in ("env", "volumeMounts"):
            if key == f"[].{field}":
                name = _container_name(raw, path[: container.end()])
                return f"container {name!r}: {field} must be a list"
    if key in _MESSAGES:
        return _MESSAGES[key]
    return f"the pod's {path.lstrip('.') or 'object'} has the wrong type ({error})"


def _container_name(raw: msgspec.Raw, path: str) -> Any:
    """The name of the container at ``path`` (".spec.containers[3]"), read again for the
    message: only refused pods pay for it. None if it is not there: with a key given twice,
    the schema may have refused one occurrence and this reading keeps the other."""
    group, index = path.removeprefix(".spec.").rstrip("]").split("[")
    try:
        return _ANY.decode(raw)["spec"][group][int(index)].get("name")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
