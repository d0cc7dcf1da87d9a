"""nova resolves compute_driver under nova.virt; this names scm's driver there."""

from scm.openstack.nova_driver import LibvirtDriver

__all__ = ["LibvirtDriver"]
