"""Password sign-in: Django's ModelBackend, with QFLOWUI_PASSWORD_LOGIN and break-glass.

With QFLOWUI_PASSWORD_LOGIN=false (single sign-on only) no password is accepted anywhere
(the login form, the admin's), except at /accounts/break-glass/, and there only a superuser's.
A refusal is an ordinary failed sign-in: django-axes counts it, the audit log has the reason.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

PASSWORD_OFF = "password sign-in is turned off"  # noqa: S105 - a message
NOT_SUPERUSER = "break-glass sign-in is for superusers only"


def is_break_glass(request: HttpRequest | None) -> bool:
    return bool(getattr(request, "qflowui_break_glass", False))


class PasswordBackend(ModelBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        break_glass = is_break_glass(request)
        if not (settings.QFLOWUI_PASSWORD_LOGIN or break_glass):
            _refuse(request, PASSWORD_OFF)
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and break_glass and not user.is_superuser:
            _refuse(request, NOT_SUPERUSER)
            return None
        return user


def _refuse(request: HttpRequest | None, reason: str) -> None:
    if request is not None:
        request.qflowui_login_refusal = reason
