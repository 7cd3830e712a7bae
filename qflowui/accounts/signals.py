"""Sign-ins, failed sign-ins, lockouts and sign-outs go to the audit log.

Connected in AccountsConfig.ready(). Each event keeps the user name as it was typed
(truncated), REMOTE_ADDR and the time (UTC). The password typed is never read: from
`user_login_failed`'s credentials only the user name is taken.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import DatabaseError, transaction
from django.http import HttpRequest

from qflowui.accounts import audit

logger = logging.getLogger(__name__)

WRONG_CREDENTIALS = "wrong user name or password"
WHILE_LOCKED = "locked out"


def connect() -> None:
    from axes.signals import user_locked_out

    user_logged_in.connect(on_logged_in, dispatch_uid="qflowui.audit.login")
    user_login_failed.connect(on_login_failed, dispatch_uid="qflowui.audit.login_failed")
    user_logged_out.connect(on_logged_out, dispatch_uid="qflowui.audit.logout")
    user_locked_out.connect(on_locked_out, dispatch_uid="qflowui.audit.locked_out")


def _path(request: HttpRequest | None) -> str:
    return (getattr(request, "path", "") or "")[:200]


def _record(**kwargs: Any) -> None:
    """A sign-in never fails because its audit line could not be written; the error is logged."""
    try:
        with transaction.atomic():
            audit.audit_record(**kwargs)
    except DatabaseError:
        logger.exception("could not write the audit event %s", kwargs.get("action"))


def typed_username(credentials: dict[str, Any] | None) -> str:
    """The user name as typed, and nothing else from the credentials."""
    if not credentials:
        return ""
    value = credentials.get(get_user_model().USERNAME_FIELD)
    if value is None:
        value = credentials.get("username")
    return "" if value is None else str(value)[: audit.NAME_LENGTH]


def sign_in_method(request: HttpRequest | None) -> str:
    if getattr(request, "qflowui_break_glass", False):
        return "break-glass password"
    return "password"


def on_logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    # Single sign-on leaves its own detail (provider, groups, access given) on the request.
    detail = getattr(request, "qflowui_login_detail", None) or {"method": sign_in_method(request)}
    _record(
        action=audit.LOGIN,
        request=request,
        user=user,
        target=f"user {user.get_username()}",
        detail={"path": _path(request), **detail},
    )


def on_login_failed(
    sender: Any,
    credentials: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    **kwargs: Any,
) -> None:
    if credentials and "nonce" in credentials:
        return  # the OpenID Connect callback: qflowui.accounts.oidc records it, with its reason
    name = typed_username(credentials)
    # A request refused because the name was already locked: AxesStandaloneBackend marked it
    # before the signal, and axes counted no failure for it. (The failure that sets a lock is
    # marked too, but after axes counted it.)
    locked = bool(getattr(request, "axes_locked_out", False)) and (
        getattr(request, "axes_failures_since_start", None) is None
    )
    _record(
        action=audit.LOGIN_FAILED,
        request=request,
        actor_name=name,
        target=f"user {name}",
        detail={
            "path": _path(request),
            "method": sign_in_method(request),
            "reason": WHILE_LOCKED
            if locked
            else getattr(request, "qflowui_login_refusal", None) or WRONG_CREDENTIALS,
        },
    )


def on_locked_out(
    sender: Any,
    request: HttpRequest | None = None,
    username: str | None = None,
    ip_address: str | None = None,
    **kwargs: Any,
) -> None:
    failures = getattr(request, "axes_failures_since_start", None)
    if failures is None:
        # axes repeats the signal for every attempt refused during a lock; that attempt is
        # already recorded as a failed sign-in "locked out". The lock itself is recorded once.
        return
    from qflowui.accounts.lockout import cool_off

    name = "" if username is None else str(username)[: audit.NAME_LENGTH]
    _record(
        action=audit.LOCKED_OUT,
        request=request,
        actor_name=name,
        target=f"user {name}",
        detail={
            "path": _path(request),
            "failures": failures,
            "minutes": int(cool_off().total_seconds() // 60),
        },
    )


def on_logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is None:
        return  # signing out without a session: nobody to record
    _record(
        action=audit.LOGOUT,
        request=request,
        user=user,
        target=f"user {user.get_username()}",
        detail={"path": _path(request)},
    )
