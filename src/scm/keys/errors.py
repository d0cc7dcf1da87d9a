"""Errors of the keys domain, each in the scm.errors category a user acts on."""

from scm.errors import ConfigError, ConflictError, InputError, NotFoundError, UnavailableError


class KeyNotFoundError(NotFoundError):
    """No key has the label asked for."""


class KeyExistsError(ConflictError):
    """A key with this label exists already."""


class KeyFormatError(InputError):
    """A PEM key or certificate given to scm cannot be used."""


class TokenLoginError(ConfigError):
    """The PIN was rejected or cannot be found."""


class TokenUnavailableError(UnavailableError):
    """The PKCS#11 module, its token or a mechanism cannot be used."""
