"""Errors raised by the QFlow client.

Every error's ``str()`` is short and safe to show to a user: it never contains a
token, a client secret or a response body, only QFlow's own one-line message.
"""

from __future__ import annotations


class QflowError(Exception):
    """Base class. ``status_code`` is the HTTP status when there was one."""

    def __init__(
        self, message: str, *, status_code: int | None = None, detail: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        # QFlow's own message (e.g. "JWT expired"), already cleaned and shortened.
        self.detail = detail


class QflowConfigError(QflowError):
    """The client is misconfigured (bad base URL, no credentials)."""


class QflowInvalidId(QflowError, ValueError):
    """An id that must not go into a URL: not a UUID, or an unsafe node id."""


class QflowUnavailable(QflowError):
    """QFlow could not be reached, timed out, or kept failing with 5xx.

    ``maybe_accepted`` is True when a non-idempotent request (a run) may have
    reached QFlow before failing, so the caller must not blindly resend it.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        detail: str | None = None,
        maybe_accepted: bool = False,
    ) -> None:
        super().__init__(message, status_code=status_code, detail=detail)
        self.maybe_accepted = maybe_accepted


class QflowAuthError(QflowError):
    """QFlow refused our credentials or token (401, also after one refresh)."""


class QflowForbidden(QflowError):
    """The credentials are valid but lack the QFlow permission (403)."""


class QflowNotFound(QflowError):
    """The workflow, execution or step does not exist (404)."""


class QflowRequestRejected(QflowError):
    """QFlow refused the request as invalid (400, 422 and other 4xx)."""


class QflowRateLimited(QflowError):
    """QFlow asked us to slow down (409/429) for longer than we are willing to wait."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        detail: str | None = None,
        wait_seconds: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, detail=detail)
        self.wait_seconds = wait_seconds


class QflowBadResponse(QflowError):
    """QFlow answered with something we cannot understand."""


__all__ = [
    "QflowAuthError",
    "QflowBadResponse",
    "QflowConfigError",
    "QflowError",
    "QflowForbidden",
    "QflowInvalidId",
    "QflowNotFound",
    "QflowRateLimited",
    "QflowRequestRejected",
    "QflowUnavailable",
]
