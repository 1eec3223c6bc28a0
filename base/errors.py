"""Domain exceptions: the one vocabulary services use for expected failures.

Resolvers turn these (and only these) into payload errors with a stable `code`; anything else
is unexpected and reaches the masking extension.
"""

from __future__ import annotations


class DomainError(Exception):
    """An expected failure with a stable machine-readable code."""

    code = "INVALID"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field


class Invalid(DomainError):
    code = "INVALID"


class NotFound(DomainError):
    code = "NOT_FOUND"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class Conflict(DomainError):
    code = "CONFLICT"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class RateLimited(DomainError):
    code = "RATE_LIMITED"


class ModelUnavailable(DomainError):
    """The LLM server is down or lacks the model; workflows map this to a user-facing message."""

    code = "MODEL_UNAVAILABLE"
