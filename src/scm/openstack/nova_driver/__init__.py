"""nova's libvirt driver with SGX guests: EPC in placement, the EPC device in the guest.

Select it with ``[DEFAULT] compute_driver = scm_libvirt.LibvirtDriver``; nova finds it through
the ``nova.virt.scm_libvirt`` shim (shims/nova-scm-libvirt). Needs nova 34.x: the guest config
hook is one of nova's private methods.
"""

from scm.openstack.nova_driver.driver import LibvirtDriver

__all__ = ["LibvirtDriver"]
