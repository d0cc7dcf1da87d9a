"""Define a domain XML in real libvirt (the test driver) with schema validation on."""

from __future__ import annotations

import libvirt


def define_validated(xml: str) -> str:
    """Define ``xml`` in ``test:///default`` validating it against libvirt's schema.

    Returns the XML libvirt keeps after parsing; raises libvirt.libvirtError when libvirt
    rejects the document.
    """
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open("test:///default")
    try:
        domain = conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        try:
            return str(domain.XMLDesc(0))
        finally:
            domain.undefine()
    finally:
        conn.close()
