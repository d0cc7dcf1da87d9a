"""The one error hierarchy of scm.

Every error a user can cause or meet derives from :class:`ScmError`. The CLI turns
them into a one-line message and the error's ``exit_code``; anything else is a bug.
Domains subclass the category that fits rather than ``ScmError`` directly.
"""


class ScmError(Exception):
    """Base of every expected failure; its message is one line a user can act on."""

    exit_code: int = 1


class RefusedError(ScmError):
    """What was checked is not acceptable (a host not ready, an image not fit, a quote
    rejected): the command worked, the answer is no."""

    exit_code = 1


class ConfigError(ScmError):
    """Settings are missing, malformed or contradict each other."""

    exit_code = 78  # EX_CONFIG


class InputError(ScmError):
    """A file, argument or request given to scm is malformed or not allowed."""

    exit_code = 65  # EX_DATAERR


class NotFoundError(ScmError):
    """Something named by the user does not exist."""

    exit_code = 66  # EX_NOINPUT


class ConflictError(ScmError):
    """Something to be created exists already."""

    exit_code = 73  # EX_CANTCREAT


class UnavailableError(ScmError):
    """A peer, device or service scm depends on cannot be reached or used."""

    exit_code = 69  # EX_UNAVAILABLE


class DiscoveryError(ScmError):
    """Nothing usable could be read about the host."""

    exit_code = 66
