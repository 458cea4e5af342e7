"""Domain errors whose message is fit to show the user as it is."""

from __future__ import annotations


class AppError(Exception):
    """An expected failure; ``str(error)`` is a short sentence for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(AppError):
    """The object does not exist or does not belong to the caller."""


class PermissionDeniedError(AppError):
    """The caller may not do this."""


class InvalidInputError(AppError):
    """The input was understood but is not acceptable."""


class ConflictError(AppError):
    """The object's state does not allow this any more."""
