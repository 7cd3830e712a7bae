"""A request id on every request, in every log line it causes, and in the tasks it enqueues.

The id is the caller's ``X-Request-ID`` when that is a safe token (a proxy or load balancer
that already assigns ids keeps them), else a fresh uuid4. It is kept in a context variable
for as long as the request (or a Celery task it enqueued) runs, so that:

- every log record made meanwhile carries ``request_id`` and ``user`` (a log record factory
  installed on top of qflowui.core.logsafe's, see ``install``);
- every task sent meanwhile carries it in a message header (``qflowui_request_id``, set by
  qflowui.celery), and the worker puts it back in the context while the task runs;
- the response says it (``X-Request-ID``), and error pages show it so a user can quote it.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.functional import empty

HEADER = "X-Request-ID"
META_KEY = "HTTP_X_REQUEST_ID"
# Celery message headers carrying the id and the user into the tasks a request enqueues.
TASK_HEADER = "qflowui_request_id"
TASK_USER_HEADER = "qflowui_user"
# What an incoming id must look like to be kept: no spaces, quotes, markup or control
# characters, so it is safe in a header, a log line and a page.
SAFE_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
_USER_MAX = 150
_INSTALLED = "_qflowui_request_context"


@dataclass(frozen=True)
class Context:
    request_id: str
    request: HttpRequest | None = None  # the user is read from it lazily, once known
    user: str | None = None  # a task's: the user of the request that enqueued it


_current: contextvars.ContextVar[Context | None] = contextvars.ContextVar(
    "qflowui_request", default=None
)


def new_id() -> str:
    return uuid.uuid4().hex


def accepted_id(raw: str | None) -> str | None:
    """``raw`` when it is a safe id, else None."""
    if raw and SAFE_ID.fullmatch(raw):
        return raw
    return None


def current_request_id() -> str | None:
    context = _current.get()
    return context.request_id if context else None


def current_user() -> str | None:
    """The signed-in user's name, if the request has already loaded the user (never loads it:
    a log line must not cost a query), or the user a task was enqueued by."""
    context = _current.get()
    if context is None:
        return None
    if context.request is None:
        return context.user
    user = context.request.__dict__.get("user")
    if user is None:
        return None
    wrapped = getattr(user, "_wrapped", user)  # SimpleLazyObject: loaded yet?
    if wrapped is None or wrapped is empty:
        return None
    if not getattr(wrapped, "is_authenticated", False):
        return None
    try:
        return str(wrapped.get_username())[:_USER_MAX] or None
    except Exception:  # noqa: BLE001 - a log line never fails on the user
        return None


def activate(request_id: str, *, request: HttpRequest | None = None, user: str | None = None):
    """Make ``request_id`` current; returns the token for ``deactivate``."""
    return _current.set(Context(request_id=request_id, request=request, user=user))


def deactivate(token: contextvars.Token | None = None) -> None:
    if token is None:
        _current.set(None)
    else:
        _current.reset(token)


class RequestIdMiddleware:
    """Takes a safe incoming X-Request-ID or makes one; sets it on the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = accepted_id(request.META.get(META_KEY)) or new_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        token = activate(request_id, request=request)
        try:
            response = self.get_response(request)
        finally:
            deactivate(token)
        response[HEADER] = request_id
        return response


def context(request: HttpRequest) -> dict[str, Any]:
    """Template context processor: ``request_id`` for error and notice pages."""
    return {"request_id": getattr(request, "request_id", None) or current_request_id()}


# --- log records ------------------------------------------------------------------------


def _user_for_log() -> str | None:
    user = current_user()
    if user is None:
        return None
    from qflowui.core.logsafe import log_safe

    return log_safe(user)


def install() -> None:
    """Wrap the log record factory (after qflowui.core.logsafe's) once: every record gets
    ``request_id`` and ``user`` (None outside a request or task) and is marked safe."""
    current = logging.getLogRecordFactory()
    if getattr(current, _INSTALLED, False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        record.request_id = current_request_id()
        record.user = _user_for_log()
        # logsafe's factory ran first: message and traceback are already masked and escaped.
        record.qflowui_safe = getattr(current, "_qflowui_safe", False)
        return record

    setattr(factory, _INSTALLED, True)
    logging.setLogRecordFactory(factory)


# --- Celery -----------------------------------------------------------------------------


def task_headers() -> dict[str, str]:
    """Headers for a task sent now: the current request id and user, if any."""
    request_id = current_request_id()
    if request_id is None:
        return {}
    headers = {TASK_HEADER: request_id}
    user = current_user()
    if user:
        headers[TASK_USER_HEADER] = user
    return headers


def task_started(task_request: Any) -> None:
    """In a worker, before a task runs: the id (and user) of the request that sent it."""
    request_id = accepted_id(_task_header(task_request, TASK_HEADER))
    if request_id is None:
        deactivate()
        return
    user = _task_header(task_request, TASK_USER_HEADER)
    user = str(user)[:_USER_MAX] if user else None
    activate(request_id, user=user)


def task_finished() -> None:
    deactivate()


def _task_header(task_request: Any, name: str) -> Any:
    value = getattr(task_request, name, None)
    if value is None:
        headers = getattr(task_request, "headers", None) or {}
        value = headers.get(name) if isinstance(headers, dict) else None
    return value if isinstance(value, str) else None
