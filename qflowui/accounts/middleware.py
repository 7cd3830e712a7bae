"""Per-request account rules: the user's time zone, and who may see data at all."""

from __future__ import annotations

import hashlib
import zoneinfo
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from qflowui.accounts import access, audit

DENIAL_RECORD_SECONDS = 60  # the same user refused the same path: one audit line a minute


class UserTimezoneMiddleware:
    """Show every time in the signed-in user's zone (UTC unless they picked another)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = _user_zone(request)
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


def _user_zone(request: HttpRequest) -> zoneinfo.ZoneInfo | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    name = access.user_facts(user).timezone  # one query with the group check
    if not name:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None  # a zone the system no longer knows: fall back to UTC, never fail


class DataAccessMiddleware:
    """Signed in is not enough: every view under /executions/, /runs/ and /audit/ (pages,
    fragments, downloads, exports, Sync now) needs the Viewers or Runners group, or staff.

    Placed right after LoginRequiredMiddleware, so anonymous visitors are already on their way
    to the login page and no view can forget the check. A signed-in user without access gets
    one page (403) saying whom to ask, and the refusal is in the audit log.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        if not _guarded(request):
            return None
        user = request.user
        if not user.is_authenticated or access.can_view(user):
            return None
        _record_denial(request)
        return no_access_response(request)


def _guarded(request: HttpRequest) -> bool:
    if request.path_info.startswith(access.GUARDED_PREFIXES):
        return True
    match = request.resolver_match
    return match is not None and bool(set(match.namespaces) & access.GUARDED_NAMESPACES)


def _record_denial(request: HttpRequest) -> None:
    path = request.path_info[: audit.TARGET_LENGTH]
    # An open tab that polls must not flood the log: one line per user and path a minute.
    digest = hashlib.sha256(path.encode()).hexdigest()[:32]
    key = f"qflowui:access-denied:{request.user.pk}:{digest}"
    if not cache.add(key, 1, DENIAL_RECORD_SECONDS):
        return
    audit.audit_record(
        action=audit.ACCESS_DENIED,
        request=request,
        target=path,
        detail={"method": request.method, "reason": "not in the Viewers or Runners group"},
    )


def no_access_response(request: HttpRequest) -> HttpResponse:
    context = {"contacts": access.staff_contacts()}
    template = "accounts/no_access.html"
    if getattr(request, "htmx", False):
        template += "#no-access"
    return render(request, template, context, status=403)


class OidcFormActionMiddleware:
    """With single sign-on, sign-out (a form posted to /accounts/logout/) is redirected on to
    the provider's end-session page; browsers apply the page's CSP form-action to that
    redirect, so the provider's origin joins 'self' there. Placed before (outside) the CSP
    middleware: it amends the header that one sets."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = response.headers.get("Content-Security-Policy")
        if not policy or "form-action 'self'" not in policy:
            return response
        from qflowui.accounts import oidc

        sources = oidc.form_action_sources()
        if sources:
            response.headers["Content-Security-Policy"] = policy.replace(
                "form-action 'self'", " ".join(["form-action 'self'", *sources]), 1
            )
        return response
