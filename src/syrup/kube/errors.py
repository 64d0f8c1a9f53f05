"""Errors of the Kubernetes client, mapped from the API's ``Status`` objects.

Callers branch on the class (the ``reason`` of the Status), never on httpx types. Network
failures and 5xx answers are :class:`Unreachable` (retry later); 409 Conflict and 410 Gone are
retry-later too; everything else is a give-up answer about the request itself. The server's
message is kept verbatim (a sync result shows it to the user).
"""

from __future__ import annotations

from typing import Any

from syrup import errors


class ApiError(errors.SyrupError):
    """An API request the server answered with a ``Status`` failure."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str, *, status: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status or {}


class Unreachable(ApiError, errors.Unavailable):
    reason = "ServiceUnavailable"
    code = 503


class BadRequest(ApiError, errors.GiveUp):
    reason, code = "BadRequest", 400


class Unauthorized(ApiError, errors.GiveUp):
    reason, code = "Unauthorized", 401


class Forbidden(ApiError, errors.GiveUp):
    reason, code = "Forbidden", 403


class NotFound(ApiError, errors.NotFound):
    reason, code = "NotFound", 404


class MethodNotAllowed(ApiError, errors.GiveUp):
    reason, code = "MethodNotAllowed", 405


class AlreadyExists(ApiError, errors.GiveUp):
    reason, code = "AlreadyExists", 409


class Conflict(ApiError, errors.RetryLater):
    reason, code = "Conflict", 409


class Gone(ApiError, errors.RetryLater):
    reason, code = "Gone", 410


class UnsupportedMediaType(ApiError, errors.GiveUp):
    reason, code = "UnsupportedMediaType", 415


class Invalid(ApiError, errors.InvalidInput):
    reason, code = "Invalid", 422

    def __init__(self, message: str, *, status: dict[str, Any] | None = None) -> None:
        ApiError.__init__(self, message, status=status)
        self.where = None


class UnknownKind(ApiError, errors.NotFound):
    """The server has no resource type for an apiVersion/kind (its CRD is missing)."""

    reason, code = "NotFound", 404


_BY_REASON: dict[str, type[ApiError]] = {
    cls.reason: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        AlreadyExists,
        Conflict,
        Gone,
        UnsupportedMediaType,
        Invalid,
    )
}
_BY_CODE: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    410: Gone,
    415: UnsupportedMediaType,
    422: Invalid,
}


def from_status(code: int, body: Any, *, fallback: str) -> ApiError:
    """The error class for an HTTP answer carrying (or not) a ``Status`` body."""
    status = body if isinstance(body, dict) else {}
    reason = str(status.get("reason") or "")
    message = str(status.get("message") or fallback)
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code)
    if cls is None:
        cls = Unreachable if code >= 500 else ApiError
    return cls(message, status=status)
