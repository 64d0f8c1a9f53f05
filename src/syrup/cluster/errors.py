"""Kubernetes ``Status`` errors raised inside the local cluster.

Each class maps to one ``reason`` and HTTP code from the Kubernetes API conventions (see
``shared/REFERENCE.md``: NotFound 404, AlreadyExists 409, Conflict 409, Invalid 422,
BadRequest 400, Unauthorized 401, Forbidden 403, MethodNotAllowed 405, Gone 410,
UnsupportedMediaType 415). The HTTP layer turns any :class:`ApiError` into a ``Status`` body
with :meth:`ApiError.status`, so code deep in storage or apply can fail precisely without
knowing about HTTP.

``Conflict`` and ``Gone`` are the retry-later kind (the client re-reads and tries again); the
others are the give-up kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from syrup import errors


@dataclass(frozen=True)
class Cause:
    """One entry of ``details.causes``: which field is wrong and why."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def to_json(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


class ApiError(errors.SyrupError):
    """A failed API request, carried as a Kubernetes ``Status``."""

    code: int = 500
    reason: str = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        group: str | None = None,
        name: str | None = None,
        causes: list[Cause] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.group = group
        self.name = name
        self.causes = causes or []
        self.retry_after = retry_after

    def status(self) -> dict[str, Any]:
        """The ``Status`` object a real API server would answer with."""
        details: dict[str, Any] = {}
        if self.name is not None:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind is not None:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [c.to_json() for c in self.causes]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            body["details"] = details
        return body


class BadRequest(ApiError, errors.InvalidInput):
    code = 400
    reason = "BadRequest"


class Unauthorized(ApiError, errors.GiveUp):
    code = 401
    reason = "Unauthorized"


class Forbidden(ApiError, errors.GiveUp):
    code = 403
    reason = "Forbidden"


class NotFound(ApiError, errors.NotFound):
    code = 404
    reason = "NotFound"


class MethodNotAllowed(ApiError, errors.GiveUp):
    code = 405
    reason = "MethodNotAllowed"


class AlreadyExists(ApiError, errors.GiveUp):
    code = 409
    reason = "AlreadyExists"


class Conflict(ApiError, errors.RetryLater):
    code = 409
    reason = "Conflict"


class Gone(ApiError, errors.RetryLater):
    code = 410
    reason = "Expired"


class UnsupportedMediaType(ApiError, errors.GiveUp):
    code = 415
    reason = "UnsupportedMediaType"


class Invalid(ApiError, errors.InvalidInput):
    """422: the object is well-formed but breaks a rule; one cause per bad field."""

    code = 422
    reason = "Invalid"


class InternalError(ApiError, errors.RetryLater):
    code = 500
    reason = "InternalError"
