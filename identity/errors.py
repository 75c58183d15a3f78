"""Errors raised by the identity package; each message names the file and the fix."""

from mien.errors import MienError


class IdentityError(MienError):
    """Base class for identity errors a user can act on."""


class ModelFileError(IdentityError):
    """A weights or classifier file is missing, corrupt or from another model."""


class StaleModelError(ModelFileError):
    """A saved artefact was built with other embedding weights and must be rebuilt."""


class NotEnrolledError(IdentityError):
    """A classifier was asked for before anybody was enrolled."""
