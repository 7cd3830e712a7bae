"""Single sign-on with OpenID Connect, on mozilla-django-oidc.

- On when OIDC_ISSUER and OIDC_CLIENT_ID are set (`enabled()`).
- The provider's endpoints come from its discovery document (`<issuer>/.well-known/
  openid-configuration`), fetched when a sign-in or sign-out first needs it and kept in the
  shared cache for OIDC_DISCOVERY_CACHE_SECONDS; a failure is remembered a few seconds and
  shown on the login page. Nothing here runs at import or settings time: a provider that is
  down never stops the app, nor password sign-in.
- mozilla-django-oidc does the protocol (state, nonce, PKCE, code exchange, RS256 signature
  against the provider's JWKS). Its settings are derived from ours by `setting()`.
- A user is found by the token's `sub` (`OidcIdentity`), never by user name or e-mail, so a
  local account is never taken over. Membership of Viewers and Runners and the staff flag
  follow the provider's groups at every sign-in; nobody becomes a superuser this way.
- Every failure (provider error, state mismatch, token error, refused token) is in the
  audit log with its reason, and said on the login page.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from qflowui.accounts import access, audit
from qflowui.accounts.models import OidcIdentity

logger = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"
DISCOVERY_TIMEOUT = (3.05, 5)  # connect, read: a login page never waits long on the provider
DISCOVERY_FAILURE_SECONDS = 15  # a provider that did not answer is not asked again for this long
CLAIM_LENGTH = 150  # user name, first and last name in Django's user model
SIGNED_IN = "signed in with {provider}"

# Where the provider's pages live, for the CSP form-action of sign-out (see middleware).
_origins: dict[str, str] = {}


class ProviderUnavailable(Exception):
    """The discovery document could not be fetched or is not usable."""


class SignInRefused(SuspiciousOperation):
    """The provider's answer was understood, and refused (a reason for the audit log)."""


def enabled() -> bool:
    return bool(settings.OIDC_ISSUER and settings.OIDC_CLIENT_ID)


def provider_name() -> str:
    return settings.OIDC_PROVIDER_NAME or "your identity provider"


def issuer() -> str:
    return settings.OIDC_ISSUER.rstrip("/")


# --- the discovery document -------------------------------------------------------------


def _keys() -> tuple[str, str]:
    digest = hashlib.sha256(issuer().encode()).hexdigest()[:24]
    return f"qflowui:oidc:discovery:{digest}", f"qflowui:oidc:discovery-failed:{digest}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def discovery() -> dict[str, Any]:
    """The provider's discovery document (cached). Raises ProviderUnavailable."""
    if not enabled():
        raise ProviderUnavailable("single sign-on is not configured")
    key, failed_key = _keys()
    document = cache.get(key)
    if isinstance(document, dict):
        return _remember(document)
    failure = cache.get(failed_key)
    if failure:
        raise ProviderUnavailable(str(failure))
    try:
        document = _fetch_discovery()
    except ProviderUnavailable as exc:
        cache.set(failed_key, str(exc), DISCOVERY_FAILURE_SECONDS)
        logger.warning("OpenID provider %s unavailable: %s", issuer(), exc)
        raise
    cache.set(key, document, settings.OIDC_DISCOVERY_CACHE_SECONDS)
    cache.delete(failed_key)
    return _remember(document)


def _remember(document: dict[str, Any]) -> dict[str, Any]:
    end_session = document.get("end_session_endpoint")
    if end_session:
        _origins[issuer()] = _origin(end_session)
    return document


def _fetch_discovery() -> dict[str, Any]:
    from qflowui.settings import oidc_issuer_problem

    url = issuer() + DISCOVERY_PATH
    try:
        response = requests.get(url, timeout=DISCOVERY_TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        raise ProviderUnavailable(f"no answer from {url} ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise ProviderUnavailable(f"{url} answered HTTP {response.status_code}")
    try:
        document = response.json()
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ProviderUnavailable(f"{url} did not answer a JSON object")
    if str(document.get("issuer", "")).rstrip("/") != issuer():
        raise ProviderUnavailable(
            f"the discovery document names another issuer ({str(document.get('issuer'))[:200]!r})"
        )
    needed = ["authorization_endpoint", "token_endpoint", "jwks_uri"]
    optional = ["userinfo_endpoint", "end_session_endpoint"]
    for name in needed + optional:
        value = document.get(name)
        if value is None and name in optional:
            continue
        if not isinstance(value, str) or oidc_issuer_problem(value):
            raise ProviderUnavailable(f"the discovery document's {name} is missing or not https")
    return document


def recent_failure() -> str | None:
    """Why the provider could not be reached a moment ago, or None (no request made here)."""
    if not enabled():
        return None
    failure = cache.get(_keys()[1])
    return str(failure) if failure else None


def form_action_sources() -> list[str]:
    """Origins sign-out's form may lead to (the provider's end-session page)."""
    if not enabled():
        return []
    origins = {_origin(issuer())}
    if issuer() in _origins:
        origins.add(_origins[issuer()])
    return sorted(origins)


def setting(attr: str, *args: Any) -> Any:
    """mozilla-django-oidc's settings, derived from ours and from the discovery document."""
    derived = {
        "OIDC_RP_CLIENT_ID": lambda: settings.OIDC_CLIENT_ID,
        "OIDC_RP_CLIENT_SECRET": lambda: settings.OIDC_CLIENT_SECRET,
        "OIDC_RP_SCOPES": lambda: settings.OIDC_SCOPES,
        "OIDC_TOKEN_USE_BASIC_AUTH": lambda: (
            settings.OIDC_TOKEN_AUTH_METHOD != "client_secret_post"  # noqa: S105
        ),
        "OIDC_OP_AUTHORIZATION_ENDPOINT": lambda: discovery()["authorization_endpoint"],
        "OIDC_OP_TOKEN_ENDPOINT": lambda: discovery()["token_endpoint"],
        "OIDC_OP_USER_ENDPOINT": lambda: discovery().get("userinfo_endpoint"),
        "OIDC_OP_JWKS_ENDPOINT": lambda: discovery()["jwks_uri"],
        "OIDC_RP_SIGN_ALGO": lambda: "RS256",
    }
    if attr in derived:
        return derived[attr]()
    return import_from_settings(attr, *args)


# --- groups → access ---------------------------------------------------------------------


def provider_groups(claims: dict[str, Any]) -> list[str]:
    """The groups claim as a list of names (a single string counts as one group)."""
    value = claims.get(settings.OIDC_GROUPS_CLAIM)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [str(item) for item in value if isinstance(item, str | int)][:500]


def _role_group(name: str) -> Group:
    """Viewers or Runners (the data migration's; recreated with its permissions if gone)."""
    group, created = Group.objects.get_or_create(name=name)
    if created:
        codenames = ["view_run"] + (["run_workflow"] if name == access.RUNNERS else [])
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="runs", codename__in=codenames)
        )
    return group


def apply_groups(user: Any, groups: list[str]) -> str:
    """Set Viewers, Runners and is_staff from the provider's groups; returns the access given
    ("admin", "runner", "viewer" or "none")."""
    names = set(groups)
    wanted = {
        access.VIEWERS: bool(names & set(settings.OIDC_VIEWER_GROUPS)),
        access.RUNNERS: bool(names & set(settings.OIDC_RUNNER_GROUPS)),
    }
    for name, member in wanted.items():
        group = _role_group(name)
        if member:
            user.groups.add(group)
        else:
            user.groups.remove(group)
    user.is_staff = bool(names & set(settings.OIDC_ADMIN_GROUPS))
    user.is_superuser = False  # the provider never makes a superuser
    user.save(update_fields=["is_staff", "is_superuser"])
    if hasattr(user, access._FACTS):
        delattr(user, access._FACTS)
    if user.is_staff:
        return "admin"
    if wanted[access.RUNNERS]:
        return "runner"
    return "viewer" if wanted[access.VIEWERS] else "none"


# --- the backend -------------------------------------------------------------------------


class OidcBackend(OIDCAuthenticationBackend):
    """Authenticates the /oidc/callback/ request only (never a user name and password)."""

    get_settings = staticmethod(setting)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Django builds a backend for every request that reads its user: no settings check,
        # no discovery here. The endpoints are looked up when a sign-in needs them.
        self.UserModel = get_user_model()
        self.OIDC_RP_SIGN_ALGO = "RS256"
        self.OIDC_RP_IDP_SIGN_KEY = None

    OIDC_RP_CLIENT_ID = property(lambda self: settings.OIDC_CLIENT_ID)
    OIDC_RP_CLIENT_SECRET = property(lambda self: settings.OIDC_CLIENT_SECRET)
    OIDC_OP_TOKEN_ENDPOINT = property(lambda self: setting("OIDC_OP_TOKEN_ENDPOINT"))
    OIDC_OP_USER_ENDPOINT = property(lambda self: setting("OIDC_OP_USER_ENDPOINT"))
    OIDC_OP_JWKS_ENDPOINT = property(lambda self: setting("OIDC_OP_JWKS_ENDPOINT"))

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> Any:
        # The callback view passes exactly these; a password form never does.
        if request is None or not enabled() or set(kwargs) != {"nonce", "code_verifier"}:
            return None
        self.subject_name = ""
        try:
            user = super().authenticate(request, **kwargs)
        except ProviderUnavailable as exc:
            reason = f"the provider could not be reached ({exc})"
        except requests.HTTPError as exc:
            reason = _token_error(exc)
        except requests.RequestException as exc:
            reason = f"the provider did not answer ({type(exc).__name__})"
        except SuspiciousOperation as exc:
            reason = f"the provider's answer was refused ({exc})"
        else:
            if user is not None:
                return user
            reason = getattr(self, "refusal", "") or "the provider's answer was refused"
        record_failure(request, reason, actor_name=self.subject_name)
        return None

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        payload = super().verify_token(token, **kwargs)  # signature (JWKS, RS256), exp, nonce
        # mozilla-django-oidc leaves these to us: the token is for us, from our issuer.
        if str(payload.get("iss", "")).rstrip("/") != issuer():
            raise SignInRefused("the id_token is from another issuer")
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if settings.OIDC_CLIENT_ID not in audiences:
            raise SignInRefused("the id_token is for another client")
        return payload

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict:
        claims = {key: value for key, value in payload.items() if key not in _TOKEN_ONLY}
        if self.OIDC_OP_USER_ENDPOINT:
            info = super().get_userinfo(access_token, id_token, payload)
            if not isinstance(info, dict) or info.get("sub") != payload.get("sub"):
                raise SignInRefused("userinfo is about another subject")
            claims.update(info)
        return claims

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(claims.get("sub"))

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict) -> Any:
        try:
            claims = self.get_userinfo(access_token, id_token, payload)
        except SignInRefused as exc:
            return self._refuse(str(exc))
        subject = str(claims.get("sub") or "")
        self.subject_name = str(claims.get("preferred_username") or claims.get("email") or "")
        if not subject or len(subject) > 255:
            return self._refuse("the token has no usable sub claim")
        try:
            with transaction.atomic():
                return self._sign_in(subject, claims)
        except IntegrityError:  # the same person's first sign-in twice at once
            with transaction.atomic():
                return self._sign_in(subject, claims)

    def _sign_in(self, subject: str, claims: dict[str, Any]) -> Any:
        identity = (
            OidcIdentity.objects.select_for_update()
            .select_related("user")
            .filter(issuer=issuer(), subject=subject)
            .first()
        )
        if identity is None:
            user = self.create_user(claims)
            OidcIdentity.objects.create(user=user, issuer=issuer(), subject=subject)
        else:
            user = identity.user
            if not user.is_active:
                return self._refuse("the account is disabled in qflowui")
        return self.update_user(user, claims)

    def _refuse(self, reason: str) -> None:
        self.refusal = reason
        return None

    def create_user(self, claims: dict[str, Any]) -> Any:
        user = self.UserModel(username=self._free_username(claims))
        user.set_unusable_password()  # signs in with the provider only
        user.save()
        return user

    def _free_username(self, claims: dict[str, Any]) -> str:
        """preferred_username, else email, else sub; never one a user already has (a local
        account of the same name stays theirs): then `name-2`, `name-3`, ..."""
        base = str(claims.get("preferred_username") or claims.get("email") or claims["sub"])
        base = base.strip()[:CLAIM_LENGTH] or "user"
        candidate, number = base, 2
        while self.UserModel.objects.filter(username__iexact=candidate).exists():
            suffix = f"-{number}"
            candidate = base[: CLAIM_LENGTH - len(suffix)] + suffix
            number += 1
        return candidate

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        """At every sign-in: e-mail and name from the provider, access from its groups."""
        email = claims.get("email")
        user.email = str(email)[:254] if isinstance(email, str) else ""
        first, last = claims.get("given_name"), claims.get("family_name")
        if not (first or last):
            first, last = claims.get("name"), ""
        user.first_name = str(first or "")[:CLAIM_LENGTH]
        user.last_name = str(last or "")[:CLAIM_LENGTH]
        user.save(update_fields=["email", "first_name", "last_name"])
        groups = provider_groups(claims)
        given = apply_groups(user, groups)
        if self.request is not None:
            self.request.qflowui_login_detail = {
                "method": SIGNED_IN.format(provider=provider_name()),
                "subject": str(claims.get("sub"))[:255],
                "groups": groups[:20],
                "access": given,
            }
        return user


_TOKEN_ONLY = {"aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "azp", "auth_time"}


def _token_error(exc: requests.HTTPError) -> str:
    """The provider's OAuth error code, never the response body or the secret."""
    response = exc.response
    code = ""
    if response is not None:
        try:
            body = response.json()
            code = str(body.get("error", ""))[:64] if isinstance(body, dict) else ""
        except ValueError:
            code = ""
    status = response.status_code if response is not None else "?"
    return f"the token request was refused (HTTP {status}{', ' + code if code else ''})"


def record_failure(request: HttpRequest, reason: str, *, actor_name: str = "") -> None:
    """A failed single sign-on, in the audit log and for the login page's message."""
    request.qflowui_oidc_failure = reason
    logger.warning("single sign-on failed: %s", reason)
    audit.audit_record(
        action=audit.LOGIN_FAILED,
        request=request,
        user=None,
        actor_name=actor_name[: audit.NAME_LENGTH],
        target="single sign-on",
        detail={
            "path": request.path[:200],
            "method": SIGNED_IN.format(provider=provider_name()),
            "reason": reason[:300],
        },
    )


def axes_whitelisted(request: HttpRequest, credentials: dict | None = None) -> bool:
    """django-axes counts password failures; the callback is not one (the provider guards
    its own sign-in, and the code and state cannot be guessed)."""
    path = getattr(request, "path_info", "") or ""
    return path == reverse("oidc_authentication_callback")


# --- the views mounted at /oidc/ (mozilla_django_oidc.urls) --------------------------------


def unreachable_message(reason: str) -> str:
    also = " or sign in with your password" if settings.QFLOWUI_PASSWORD_LOGIN else ""
    return (
        f"{provider_name()} could not be reached just now ({reason}). Try again in a minute{also}."
    )


def _login_url(next_url: str | None = None) -> str:
    url = resolve_url(settings.LOGIN_URL)
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


@method_decorator(login_not_required, name="dispatch")
class AuthenticateView(OIDCAuthenticationRequestView):
    """/oidc/authenticate/?next=…: off to the provider's sign-in page."""

    get_settings = staticmethod(setting)

    def __init__(self, **kwargs: Any) -> None:
        View.__init__(self, **kwargs)  # the endpoint is looked up at the request, not here

    def get(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            raise Http404("single sign-on is not configured")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = discovery()["authorization_endpoint"]
        except ProviderUnavailable as exc:
            messages.error(request, unreachable_message(str(exc)))
            return HttpResponseRedirect(_login_url(request.GET.get("next")))
        self.OIDC_RP_CLIENT_ID = settings.OIDC_CLIENT_ID
        return super().get(request)


@method_decorator(login_not_required, name="dispatch")
class CallbackView(OIDCAuthenticationCallbackView):
    """/oidc/callback/: the provider's answer. Success: signed in, to `next`. Failure: the
    login page says why, and the audit log has it."""

    get_settings = staticmethod(setting)

    def get(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            raise Http404("single sign-on is not configured")
        states = request.session.get("oidc_states") or {}
        error = request.GET.get("error")
        if error:
            description = request.GET.get("error_description", "")[:200]
            record_failure(
                request,
                f"the provider answered {error[:64]}" + (f": {description}" if description else ""),
            )
        elif "code" not in request.GET or "state" not in request.GET:
            record_failure(request, "the provider's answer has no code or state")
            return self.login_failure()
        elif request.GET["state"] not in states:
            # Not started in this browser session, already used, or forged.
            record_failure(request, "state mismatch: this sign-in was not started here")
            return self.login_failure()
        return super().get(request)

    def login_failure(self) -> HttpResponse:
        reason = getattr(self.request, "qflowui_oidc_failure", "") or "no answer"
        messages.error(
            self.request,
            f"Signing in with {provider_name()} did not work: {reason}. Please try again.",
        )
        return HttpResponseRedirect(_login_url(self.request.session.get("oidc_login_next")))

    def login_success(self) -> HttpResponse:
        response = super().login_success()
        detail = getattr(self.request, "qflowui_login_detail", {})
        if detail.get("access") == "none":
            audit.audit_record(
                action=audit.ACCESS_DENIED,
                request=self.request,
                target="sign-in",
                detail={
                    "reason": f"signed in with {provider_name()}, but in none of the groups "
                    "OIDC_VIEWER_GROUPS, OIDC_RUNNER_GROUPS, OIDC_ADMIN_GROUPS",
                    "groups": detail.get("groups", []),
                },
            )
        return response


# --- sign-out ----------------------------------------------------------------------------


def provider_logout_url(request: HttpRequest) -> str:
    """Where sign-out goes: the provider's end_session_endpoint (RP-initiated logout) for a
    user who signed in with it, else the login page. Call before the session is flushed."""
    fallback = resolve_url(settings.LOGOUT_REDIRECT_URL)
    id_token = request.session.get("oidc_id_token")
    if not enabled() or not id_token:
        return fallback
    try:
        endpoint = discovery().get("end_session_endpoint")
    except ProviderUnavailable:
        return fallback
    if not endpoint:
        return fallback
    params = urlencode(
        {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": request.build_absolute_uri(resolve_url(settings.LOGIN_URL)),
            "client_id": settings.OIDC_CLIENT_ID,
        }
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{params}"
