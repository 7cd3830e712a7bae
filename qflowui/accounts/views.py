"""Signing in (password, break-glass, single sign-on's button) and out; the user's own
preferences: the time zone times are shown in."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from qflowui.accounts import audit, backends, oidc
from qflowui.accounts.forms import TimezoneForm
from qflowui.accounts.models import Preference

FALLBACK_NEXT = "/executions/"


@require_http_methods(["GET", "POST"])
def timezone_set(request: HttpRequest) -> HttpResponse:
    """GET: the full list of zones. POST: save the choice and go back to `next`."""
    if request.method == "POST":
        form = TimezoneForm(request.POST)
        if form.is_valid():
            Preference.objects.update_or_create(
                user=request.user, defaults={"timezone": form.cleaned_data["timezone"]}
            )
            messages.success(request, f"Times are now shown in {form.cleaned_data['timezone']}.")
            return HttpResponseRedirect(_safe_next(request, form.cleaned_data.get("next", "")))
    else:
        form = TimezoneForm(
            initial={
                "timezone": timezone.get_current_timezone_name(),
                "next": request.GET.get("next", ""),
            }
        )
    return render(
        request, "accounts/timezone.html", {"form": form, "zones": TimezoneForm.all_choices()}
    )


def _safe_next(request: HttpRequest, target: str) -> str:
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return FALLBACK_NEXT


# --- signing in and out ------------------------------------------------------------------


class LoginView(auth_views.LoginView):
    """/accounts/login/: "Sign in with <provider>" when single sign-on is on, and the password
    form unless QFLOWUI_PASSWORD_LOGIN is false (then a posted password is refused unread)."""

    redirect_authenticated_user = True
    break_glass = False

    def password_form_shown(self) -> bool:
        return self.break_glass or settings.QFLOWUI_PASSWORD_LOGIN

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        sso = oidc.enabled() and not self.break_glass
        next_url = context.get("next") or ""
        sso_url = reverse("oidc_authentication_init")
        context.update(
            sso_enabled=sso,
            sso_url=f"{sso_url}?{urlencode({'next': next_url})}" if next_url else sso_url,
            provider_name=oidc.provider_name(),
            provider_problem=oidc.recent_failure() if sso else None,
            password_off=not self.password_form_shown(),
            break_glass=self.break_glass,
            form_action=self.request.path,
        )
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if self.password_form_shown():
            return super().post(request, *args, **kwargs)
        typed = str(request.POST.get("username", ""))[: audit.NAME_LENGTH]
        audit.audit_record(
            action=audit.LOGIN_FAILED,
            request=request,
            user=None,
            actor_name=typed,
            target=f"user {typed}",
            detail={"path": request.path[:200], "reason": backends.PASSWORD_OFF},
        )
        context = self.get_context_data(form=self.get_form_class()(request))
        context["password_refused"] = True
        return self.render_to_response(context, status=403)


@method_decorator(login_not_required, name="dispatch")
class BreakGlassView(LoginView):
    """/accounts/break-glass/: password sign-in for superusers, also when
    QFLOWUI_PASSWORD_LOGIN is false. Locked out by django-axes like the login form."""

    break_glass = True
    redirect_authenticated_user = False

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        request.qflowui_break_glass = True  # PasswordBackend: superusers only
        return super().dispatch(request, *args, **kwargs)


@method_decorator(login_not_required, name="dispatch")
class LogoutView(auth_views.LogoutView):
    """Sign out here, and at the provider too when the user signed in with it and it has an
    end_session_endpoint (RP-initiated logout; it sends the browser back to the login page)."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        provider_url = None
        if request.user.is_authenticated:
            provider_url = oidc.provider_logout_url(request)  # before the session is flushed
        response = super().post(request, *args, **kwargs)
        if provider_url and provider_url != resolve_url(settings.LOGOUT_REDIRECT_URL):
            return HttpResponseRedirect(provider_url)
        return response


@login_not_required
def admin_login(request: HttpRequest) -> HttpResponse:
    """/admin/login/: the admin's form, or the site's login page when passwords are off."""
    if settings.QFLOWUI_PASSWORD_LOGIN:
        return admin.site.login(request)
    next_url = request.GET.get("next") or "/admin/"
    return HttpResponseRedirect(f"{reverse('login')}?{urlencode({'next': next_url})}")
