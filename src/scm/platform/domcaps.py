"""libvirt domain capabilities: what QEMU through libvirt offers guests (SGX, TDX)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scm.errors import InputError, UnavailableError
from scm.files import read_input

if TYPE_CHECKING:
    from xml.etree import ElementTree

_UNIT_BYTES = {
    "b": 1, "bytes": 1,
    "k": 1024, "kib": 1024, "kb": 1000,
    "m": 1024**2, "mib": 1024**2, "mb": 1000**2,
    "g": 1024**3, "gib": 1024**3, "gb": 1000**3,
}  # fmt: skip


@dataclass(frozen=True)
class DomcapsSection:
    """One EPC section libvirt offers guests: its NUMA node and size."""

    node: int | None
    size_bytes: int


@dataclass(frozen=True)
class DomainCaps:
    """The SGX and TDX parts of ``<domainCapabilities>``; None where libvirt is silent."""

    sgx_supported: bool | None = None
    flc: bool | None = None
    sgx1: bool | None = None
    sgx2: bool | None = None
    section_size_bytes: int | None = None
    sections: tuple[DomcapsSection, ...] = ()
    tdx_supported: bool | None = None
    emulator: str | None = None
    machine: str | None = None


def parse_domcaps(xml_text: str) -> DomainCaps:
    """Parse libvirt's domain capabilities XML; raise InputError when it is not that."""
    from xml.etree import ElementTree  # deferred: only --domcaps and --libvirt-uri parse XML

    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError as exc:
        raise InputError(f"domain capabilities are not valid XML: {exc}") from None
    if root.tag != "domainCapabilities":
        raise InputError(f"expected <domainCapabilities>, found <{root.tag}>")
    features = root.find("features")
    sgx = features.find("sgx") if features is not None else None
    tdx = features.find("tdx") if features is not None else None
    caps: dict[str, object] = {
        "emulator": _text(root.find("path")),
        "machine": _text(root.find("machine")),
        "tdx_supported": _yes(tdx.get("supported")) if tdx is not None else None,
    }
    if sgx is not None:
        caps["sgx_supported"] = _yes(sgx.get("supported"))
        caps["flc"] = _yes(_text(sgx.find("flc")))
        caps["sgx1"] = _yes(_text(sgx.find("sgx1")))
        caps["sgx2"] = _yes(_text(sgx.find("sgx2")))
        size = sgx.find("section_size")
        if size is not None and size.text:
            caps["section_size_bytes"] = _bytes(size.text, size.get("unit"))
        caps["sections"] = tuple(
            DomcapsSection(
                node=int(s.get("node", "")) if s.get("node", "").isdigit() else None,
                size_bytes=_bytes(s.get("size", ""), s.get("unit")),
            )
            for s in sgx.findall("sections/section")
        )
    return DomainCaps(**caps)  # type: ignore[arg-type]


def read_domcaps_file(path: Path) -> str:
    """The text of a domain capabilities file the user named (``virsh domcapabilities``)."""
    return read_input(path, "domain capabilities file").decode(errors="replace")


def open_libvirt(uri: str, hint: str) -> Any:
    """A libvirt connection to ``uri``; ``hint`` says what to do without libvirt-python."""
    try:
        import libvirt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise UnavailableError(f"libvirt-python is not installed; {hint}") from None
    # libvirt prints every error on stderr by default; scm reports them itself, in one line.
    libvirt.registerErrorHandler(lambda _ctx, _error: None, None)
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise UnavailableError(f"libvirt {uri}: {exc.get_error_message()}") from None


def read_domcaps_from_libvirt(uri: str) -> str:
    """Ask a libvirt connection for its domain capabilities XML."""
    conn = open_libvirt(uri, "pass --domcaps FILE")
    import libvirt  # type: ignore[import-not-found, unused-ignore]  # loaded by open_libvirt

    try:
        return str(conn.getDomainCapabilities(None, None, None, None, 0))
    except libvirt.libvirtError as exc:
        raise UnavailableError(f"libvirt {uri}: {exc.get_error_message()}") from None
    finally:
        conn.close()


def _text(element: ElementTree.Element | None) -> str | None:
    return element.text.strip() if element is not None and element.text else None


def _yes(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() == "yes"


def _bytes(number: str, unit: str | None) -> int:
    factor = _UNIT_BYTES.get((unit or "KiB").lower())
    if factor is None or not number.strip().isdigit():
        raise InputError(f"domain capabilities: bad size {number!r} {unit or ''}".rstrip())
    return int(number) * factor
