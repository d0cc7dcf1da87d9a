"""OpenStack: SGX guests in nova and placement, TDX host checks, EPC quotas, ironic discovery.

The modules at this level import nothing from OpenStack: they turn a ``HostReport`` into
placement data (``provider``), flavor extra specs and image properties into an SGX request
(``request``, ``flavor_spec``), and a host into a readiness verdict (``check_host``). The
OpenStack plugins sit in subpackages that need their host project installed: ``nova_driver``
(the libvirt driver extension) and ``ironic`` (inspection hook and ramdisk collector).
"""
