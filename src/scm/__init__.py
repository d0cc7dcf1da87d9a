"""SCM: Secured Cloud Management for Intel SGX and TDX confidential computing."""

__version__ = "0.1.0"
