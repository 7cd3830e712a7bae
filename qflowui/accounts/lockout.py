"""Sign-in lockout, the parts django-axes asks the project for (see AXES_* in settings).

- `client_ip`: the address a lock applies to (REMOTE_ADDR, never a forwarded header);
- `cool_off`: how long a lock lasts (QFLOWUI_LOGIN_COOLOFF_MINUTES);
- `lockout_response`: the login form again, with a message saying until when and what to do,
  instead of axes' bare page; on /admin/login/ the admin's own form.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import NON_FIELD_ERRORS
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from qflowui.accounts.audit import NAME_LENGTH

LOGIN_TEMPLATE = "registration/login.html"


def client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def cool_off(request: HttpRequest | None = None) -> timedelta:
    return timedelta(minutes=settings.QFLOWUI_LOGIN_COOLOFF_MINUTES)


def locked_until(username: str | None, ip_address: str | None) -> datetime:
    """When the lock on this name from this address ends (UTC)."""
    from axes.models import AccessAttempt

    last = AccessAttempt.objects.filter(username=username, ip_address=ip_address).aggregate(
        last=Max("attempt_time")
    )["last"]
    return (last or timezone.now()) + cool_off()


def shown_time(moment: datetime) -> str:
    """`23:15 UTC`, rounded up to the minute (never earlier than the lock's end); with the
    date when it is not today."""
    moment = moment.astimezone(UTC)
    minute = moment.replace(second=0, microsecond=0)
    if minute < moment:
        minute += timedelta(minutes=1)
    now = timezone.now().astimezone(UTC)
    if minute.date() == now.date():
        return f"{minute:%H:%M} UTC"
    return f"{minute:%Y-%m-%d %H:%M} UTC"


def lockout_message(until: datetime) -> str:
    return (
        "Too many failed sign-ins for this user from your address. "
        f"Try again after {shown_time(until)}, or ask an administrator to unlock you."
    )


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """The login form that was just answered (ours or the admin's), with the lockout message
    in place of "wrong password", status AXES_HTTP_RESPONSE_CODE (429) and Retry-After."""
    from axes.helpers import get_client_username

    until = locked_until(get_client_username(request, credentials), client_ip(request))
    message = lockout_message(until)
    context = getattr(original_response, "context_data", None)
    if isinstance(original_response, TemplateResponse) and isinstance(context, dict):
        template = original_response.template_name
        context = dict(context)
    else:  # not a login view's answer: our own form
        template = LOGIN_TEMPLATE
        typed = str(request.POST.get("username", ""))[:NAME_LENGTH]
        context = {"form": AuthenticationForm(request, initial={"username": typed})}
    form = context.get("form")
    if isinstance(form, AuthenticationForm):
        form.errors[NON_FIELD_ERRORS] = form.error_class([message], error_class="nonfield")
    context["lockout_message"] = message
    response = TemplateResponse(request, template, context, status=settings.AXES_HTTP_RESPONSE_CODE)
    response.render()
    seconds = (until - timezone.now()).total_seconds()
    response["Retry-After"] = str(max(1, math.ceil(seconds)))
    return response
