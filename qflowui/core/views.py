"""Liveness and readiness probes (no login, no data), and the pages for a failing database."""

from __future__ import annotations

import logging
import sys

from django.contrib.auth.decorators import login_not_required
from django.db import InterfaceError, OperationalError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from qflowui.core.broker import broker_reachable
from qflowui.core.requestid import current_request_id
from qflowui.runs.heartbeat import beat_status

logger = logging.getLogger(__name__)


# The database is down, refuses us, does not answer in time (connect or statement timeout).
DATABASE_ERRORS = (OperationalError, InterfaceError)
DATABASE_RETRY_AFTER_SECONDS = 30


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. No database, no session, no cache (and answered by
    qflowui.core.middleware.HealthzMiddleware before any other middleware runs)."""
    return JsonResponse({"status": "ok"})


def database_unavailable(request: HttpRequest, exc: BaseException | None = None) -> HttpResponse:
    """A short 503 page, built without the database: no user, session or context processor."""
    logger.warning(
        "database unavailable for %s %s: %s",
        request.method,
        request.path,
        type(exc).__name__ if exc is not None else "unknown",
    )
    context = {"retry_seconds": DATABASE_RETRY_AFTER_SECONDS, "request_id": _request_id(request)}
    html = render_to_string("503.html", context)
    response = HttpResponse(html, status=503)
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store, private"
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500. A database error raised outside a view (the session or the user loaded by
    a middleware) gets the 503 page too; anything else is Django's plain 500."""
    exc = sys.exc_info()[1]
    if isinstance(exc, DATABASE_ERRORS):
        return database_unavailable(request, exc)
    return _error_page(request, "500.html", 500)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: a short page with the request id (no database, no user)."""
    return _error_page(request, "404.html", 404)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler403: a short page with the request id (no database, no user)."""
    return _error_page(request, "403.html", 403)


def _error_page(request: HttpRequest, template: str, status: int) -> HttpResponse:
    """Rendered without the request's context processors: no session, user or database."""
    try:
        html = render_to_string(template, {"request_id": _request_id(request)})
    except Exception:  # the error page itself failed: a bare one
        logger.exception("error page %s could not be rendered", template)
        return HttpResponse(f"Error {status}", status=status, content_type="text/plain")
    return HttpResponse(html, status=status)


def _request_id(request: HttpRequest) -> str | None:
    return getattr(request, "request_id", None) or current_request_id()


@login_not_required
@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database_ok(), "broker": broker_reachable()}
    ready = all(checks.values())
    body = {"status": "ok" if ready else "unavailable", "checks": checks}
    if checks["database"]:
        # Reported, but not a readiness check: without beat the web still serves every page;
        # only syncs and the rescue of lost run messages wait (and the header says so).
        body["beat"] = _beat()
    return JsonResponse(body, status=200 if ready else 503)


def _beat() -> bool | str:
    """True while beat ticks; "stale since <time>" after 3 missed intervals; "not seen yet"
    on a fresh install."""
    try:
        status = beat_status()
    except Exception:
        logger.warning("readyz: beat heartbeat unreadable", exc_info=True)
        return "unknown"
    if status.last is None:
        return "not seen yet"
    if status.stale:
        return f"stale since {status.last.isoformat(timespec='seconds')}"
    return True


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        logger.warning("readyz: database unreachable", exc_info=True)
        return False
