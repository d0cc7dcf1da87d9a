"""Bare-metal SGX/TDX discovery: a ramdisk collector and an ironic inspection hook.

The collector (ironic-python-agent, entry point ``scm-tee``) adds the host report to the
inspection data under ``scm_host_report``; the hook (ironic, entry point ``scm-tee``) turns it
into node traits and the ``sgx_epc_mb`` property.
"""

REPORT_KEY = "scm_host_report"
