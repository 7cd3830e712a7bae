"""Site-wide middleware: liveness before everything, a 503 page for a failing database, a
strict Content-Security-Policy (everything from our own origin, nothing inline), no-store."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.middleware.gzip import GZipMiddleware
from django.urls import reverse

HEALTHZ_PATH = "/healthz"
READYZ_PATH = "/readyz"


class HealthzMiddleware:
    """Answers /healthz before any other middleware: no https redirect, no session, no user,
    no database. A database that hangs cannot slow the liveness probe down.

    /readyz too (it checks the database and the broker itself): a probe speaks plain http to
    the container's own address (Host 127.0.0.1 or a pod IP), which neither the https
    redirect nor ALLOWED_HOSTS must turn away. Neither answer carries any data."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == HEALTHZ_PATH:
            from qflowui.core.views import healthz

            return healthz(request)
        if request.path_info == READYZ_PATH:
            from qflowui.core.views import readyz

            return readyz(request)
        return self.get_response(request)


class DatabaseUnavailableMiddleware:
    """A view that meets a database error (down, refusing, connect or statement timeout)
    answers the short 503 page. Errors raised by other middleware (loading the session or
    the user) reach handler500 (qflowui.core.views.server_error), which does the same."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from qflowui.core.views import DATABASE_ERRORS, database_unavailable

        if isinstance(exception, DATABASE_ERRORS):
            return database_unavailable(request, exception)
        return None


CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        return response


class NoStoreMiddleware:
    """Nothing a server answers is kept by a browser or a shared cache.

    Pages, fragments, downloads and exports behind the login are full of upstream data;
    static files never reach this middleware (WhiteNoise answers them earlier).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers["Cache-Control"] = "no-store, private"
        if request.method == "POST" and request.path == reverse("logout"):
            # Signing out also empties what the browser may hold for this site.
            response.headers["Clear-Site-Data"] = '"cache", "storage"'
        return response


class GZipPagesMiddleware(GZipMiddleware):
    """Pages and fragments compressed (the executions list: ~100 KB of HTML → ~10 KB).

    Streaming responses (payload downloads, evidence bundles) are left as they are: they are
    large, already bounded in memory, and compressing them would cost the web process CPU
    per megabyte. BREACH: the pages carry Django's CSRF token, which is masked afresh on
    every response (a different string each time), and Django's GZipMiddleware pads each
    compressed response with random bytes ("Heal the Breach", Django 4.2+); secrets from
    QFlow are masked before they are stored. QFLOWUI_GZIP=0 turns compression off.
    """

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if response.streaming:
            return response
        return super().process_response(request, response)
