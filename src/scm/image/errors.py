"""Errors of the image builder and checker."""

from scm.errors import InputError, ScmError, UnavailableError


class ImageSpecError(InputError):
    """The requested image cannot be built as asked (bad release, size, path, key...)."""


class ImageToolMissing(UnavailableError):
    """A program the build needs is not installed."""


class ImageBuildError(ScmError):
    """A build step failed; the message names the step and the reason."""

    exit_code = 70
