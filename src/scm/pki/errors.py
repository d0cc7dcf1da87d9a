"""Errors of the pki domain, each in the scm.errors category a user acts on."""

from scm.errors import ConflictError, InputError, NotFoundError, UnavailableError


class CertificateRequestError(InputError):
    """A CSR is malformed, its signature does not verify, or the policy forbids it."""


class CANotFoundError(NotFoundError):
    """No local CA has been initialised in the state directory."""


class CAExistsError(ConflictError):
    """A local CA exists already."""


class CAUnavailableError(UnavailableError):
    """A remote CA cannot be reached, refused the request or did not answer in time."""


class InvalidSvidError(CAUnavailableError):
    """A certificate is not the X.509-SVID that was asked for (wrong chain, SAN, key, ...)."""
