"""Single sign-on with OpenID Connect, against a real provider (panva's oidc-provider on
loopback, tests/oidc_support.py): groups → access at every sign-in, users matched by `sub`,
failures in the audit log, password sign-in turned off with a break-glass door, sign-out at
the provider too."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.test import Client

from qflowui.accounts import audit
from qflowui.accounts.models import OidcIdentity
from qflowui.runs.models import AuditEvent
from tests.oidc_support import *  # noqa: F403 - the fixtures
from tests.oidc_support import CLIENT_SECRET, PROVIDER_NAME
from tests.test_settings import _settings_in_subprocess

pytestmark = pytest.mark.django_db(transaction=True)

RUN_BUTTON = "Run a workflow"


def start(client: Client, next_url: str | None = "/executions/") -> str:
    """Click "Sign in with …": the provider's authorization URL."""
    response = client.get("/oidc/authenticate/", {"next": next_url} if next_url else {})
    assert response.status_code == 302, response.content[:500]
    return response["Location"]


def finish(client: Client, callback_url: str):
    parts = urlsplit(callback_url)
    assert parts.netloc == "testserver" and parts.path == "/oidc/callback/", callback_url
    return client.get(f"{parts.path}?{parts.query}")


def sign_in(provider, login: str, client: Client | None = None, **kwargs):
    """A whole sign-in as `login` through the provider's pages; (client, callback answer)."""
    client = client or Client()
    answer = finish(client, provider.walk(start(client, **kwargs), login))
    return client, answer


def user(name: str) -> User:
    return User.objects.get(username=name)


def groups(u: User) -> set[str]:
    return set(u.groups.values_list("name", flat=True))


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


# --- groups → access, at every sign-in ------------------------------------------------


def test_a_runner_signs_in_and_lands_where_they_were_going_with_run_rights(oidc):
    client, answer = sign_in(oidc, "alice")

    assert answer.status_code == 302 and answer["Location"] == "/executions/"
    alice = user("alice")
    assert groups(alice) == {"Runners"}
    assert not alice.is_staff and not alice.is_superuser
    assert not alice.has_usable_password()
    assert (alice.email, alice.first_name) == ("alice@example.test", "Alice Anders")
    identity = OidcIdentity.objects.get(user=alice)
    assert (identity.issuer, identity.subject) == (oidc.issuer, "alice")
    assert client.get("/executions/").status_code == 200
    assert RUN_BUTTON in client.get("/runs/").content.decode()

    [login] = events(audit.LOGIN)
    assert login.actor == alice and login.remote_addr == "127.0.0.1"
    assert login.detail["method"] == f"signed in with {PROVIDER_NAME}"
    assert login.detail["access"] == "runner"
    assert login.detail["groups"] == ["qflow-runners"]


def test_removed_from_the_runner_group_loses_runners_at_the_next_sign_in(oidc):
    sign_in(oidc, "alice")
    assert groups(user("alice")) == {"Runners"}

    oidc.set_user("alice", groups=["qflow-viewers"])
    client, answer = sign_in(oidc, "alice")

    assert answer.status_code == 302
    assert groups(user("alice")) == {"Viewers"}
    assert client.get("/executions/").status_code == 200
    page = client.get("/runs/").content.decode()
    assert RUN_BUTTON not in page
    assert client.get("/runs/new/").status_code == 403
    assert [e.detail["access"] for e in events(audit.LOGIN)] == ["runner", "viewer"]


def test_a_viewer_sees_but_cannot_run(oidc):
    client, _ = sign_in(oidc, "bob")

    assert groups(user("bob")) == {"Viewers"}
    assert client.get("/executions/").status_code == 200
    assert RUN_BUTTON not in client.get("/runs/").content.decode()


def test_a_user_in_no_mapped_group_gets_the_ask_for_access_page(oidc):
    oidc.set_user("carol", groups=["some-other-team"])
    client, answer = sign_in(oidc, "carol")

    assert answer.status_code == 302
    page = client.get(answer["Location"])
    assert page.status_code == 403
    assert "You have no access yet" in page.content.decode()
    assert groups(user("carol")) == set()
    [login] = events(audit.LOGIN)
    assert login.detail["access"] == "none"
    denied = events(audit.ACCESS_DENIED)
    assert denied[0].target == "sign-in" and "none of the groups" in denied[0].detail["reason"]


def test_the_admin_group_gives_staff_never_superuser(oidc):
    oidc.set_user("bob", groups=["qflow-admins"])
    sign_in(oidc, "bob")
    bob = user("bob")
    assert bob.is_staff and not bob.is_superuser

    User.objects.filter(pk=bob.pk).update(is_superuser=True)  # promoted by hand
    oidc.set_user("bob", groups=["qflow-viewers"])
    client, _ = sign_in(oidc, "bob")
    bob.refresh_from_db()
    assert not bob.is_staff and not bob.is_superuser
    assert client.get("/audit/").status_code == 403


def test_groups_in_a_differently_named_claim(oidc, settings):
    settings.OIDC_GROUPS_CLAIM = "roles"  # the provider sends "groups": nothing maps
    sign_in(oidc, "alice")
    assert groups(user("alice")) == set()


# --- who is who: the sub ---------------------------------------------------------------


def test_the_same_sub_with_a_new_preferred_username_is_the_same_user(oidc):
    sign_in(oidc, "alice")
    first = user("alice")

    oidc.set_user(
        "alice", preferred_username="alice.smith", email="alice.smith@example.test", name="A S"
    )
    sign_in(oidc, "alice")

    assert User.objects.count() == 1
    again = User.objects.get()
    assert again.pk == first.pk and again.username == "alice"  # the name stays
    assert (again.email, again.first_name) == ("alice.smith@example.test", "A S")


def test_a_local_account_with_the_same_name_and_email_is_never_taken_over(oidc, password):
    local = User.objects.create_user(
        username="alice", email="alice@example.test", password=password, is_staff=True
    )

    client, answer = sign_in(oidc, "alice")

    assert answer.status_code == 302
    linked = OidcIdentity.objects.get(subject="alice").user
    assert linked.pk != local.pk and linked.username == "alice-2"
    local.refresh_from_db()
    assert local.is_staff and local.check_password(password) and groups(local) == set()
    assert int(client.session["_auth_user_id"]) == linked.pk


# --- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "issuer",
    ["http://idp.example.com", "http://10.0.0.5:8080/realms/x", "https://u:p@idp.example.com"],
)
def test_the_issuer_must_be_https_except_on_loopback(issuer):
    done = _settings_in_subprocess(
        {"OIDC_ISSUER": issuer, "OIDC_CLIENT_ID": "qflowui"}, "settings.OIDC_ISSUER"
    )
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and "OIDC_ISSUER=" in done.stderr
    assert "u:p" not in done.stderr


@pytest.mark.parametrize(
    "issuer", ["https://idp.example.com/realms/x", "http://127.0.0.1:9", "http://localhost:9"]
)
def test_an_https_or_loopback_issuer_is_accepted_and_not_fetched_at_startup(issuer):
    done = _settings_in_subprocess(
        {"OIDC_ISSUER": issuer, "OIDC_CLIENT_ID": "qflowui"}, "settings.OIDC_ISSUER"
    )
    assert done.returncode == 0, done.stderr
    assert issuer in done.stdout


def test_client_secret_post(oidc, settings):
    settings.OIDC_CLIENT_ID = "qflowui-post"  # registered with client_secret_post
    settings.OIDC_TOKEN_AUTH_METHOD = "client_secret_post"
    client, answer = sign_in(oidc, "bob")
    assert answer.status_code == 302 and answer["Location"] == "/executions/"
    assert client.get("/executions/").status_code == 200


def test_a_token_error_is_refused_audited_and_said_on_the_login_page(oidc, settings):
    settings.OIDC_CLIENT_SECRET = "not-" + CLIENT_SECRET
    client, answer = sign_in(oidc, "alice")

    assert answer.status_code == 302 and answer["Location"].startswith("/accounts/login/")
    page = client.get(answer["Location"]).content.decode()
    assert f"Signing in with {PROVIDER_NAME} did not work" in page
    assert "invalid_client" in page
    assert not User.objects.filter(username="alice").exists()
    [failed] = events(audit.LOGIN_FAILED)
    assert failed.detail["method"] == f"signed in with {PROVIDER_NAME}"
    assert "token request was refused (HTTP 401, invalid_client)" in failed.detail["reason"]
    assert CLIENT_SECRET not in str(failed.detail)
    assert not AccessAttempt.objects.exists()  # not a password failure


def test_a_state_mismatch_is_refused_and_audited(oidc):
    victim = Client()
    callback = oidc.walk(start(Client()), "alice")  # started in another browser

    answer = finish(victim, callback)

    assert answer.status_code == 302 and answer["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in victim.session
    [failed] = events(audit.LOGIN_FAILED)
    assert "state mismatch" in failed.detail["reason"]
    assert "did not work: state mismatch" in victim.get(answer["Location"]).content.decode()


def test_a_provider_error_is_audited(oidc):
    client = Client()
    authorize = start(client)
    state = parse_qs(urlsplit(authorize).query)["state"][0]
    answer = client.get(
        "/oidc/callback/", {"error": "access_denied", "error_description": "no", "state": state}
    )
    assert answer.status_code == 302
    [failed] = events(audit.LOGIN_FAILED)
    assert failed.detail["reason"] == "the provider answered access_denied: no"


def test_an_unreachable_provider_says_so_and_password_sign_in_still_works(
    oidc, settings, viewer, password
):
    settings.OIDC_ISSUER = "http://127.0.0.1:9"  # nothing listens there
    client = Client()

    answer = client.get("/oidc/authenticate/", {"next": "/runs/"})

    assert answer.status_code == 302 and answer["Location"] == "/accounts/login/?next=%2Fruns%2F"
    page = client.get(answer["Location"]).content.decode()
    assert f"{PROVIDER_NAME} could not be reached just now" in page
    assert "data-sso-problem" in page and 'id="id_password"' in page
    signed = client.post("/accounts/login/", {"username": viewer.username, "password": password})
    assert signed.status_code == 302 and client.get("/executions/").status_code == 200


def test_without_an_issuer_there_is_no_sso(client, settings):
    settings.OIDC_ISSUER = ""
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with" not in page and 'id="id_password"' in page
    assert client.get("/oidc/authenticate/").status_code == 404


def test_the_login_page_offers_the_provider_keeping_next(oidc, client):
    page = client.get("/accounts/login/?next=/runs/").content.decode()
    assert f"Sign in with {PROVIDER_NAME}" in page
    assert 'href="/oidc/authenticate/?next=%2Fruns%2F"' in page
    assert 'id="id_password"' in page  # QFLOWUI_PASSWORD_LOGIN defaults to true


# --- password sign-in turned off; break-glass --------------------------------------------


def test_with_password_login_off_the_form_is_gone_and_a_password_is_refused(
    oidc, settings, viewer, admin_user, password
):
    settings.QFLOWUI_PASSWORD_LOGIN = False
    client = Client()

    page = client.get("/accounts/login/").content.decode()
    refused = client.post("/accounts/login/", {"username": viewer.username, "password": password})
    admin = client.post("/accounts/login/", {"username": admin_user.username, "password": password})
    admin_site = client.get("/admin/login/?next=/admin/")

    assert f"Sign in with {PROVIDER_NAME}" in page and 'id="id_password"' not in page
    assert refused.status_code == 403 and admin.status_code == 403
    assert "Password sign-in is turned off" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    assert admin_site.status_code == 302 and admin_site["Location"].startswith("/accounts/login/")
    reasons = [e.detail["reason"] for e in events(audit.LOGIN_FAILED)]
    assert reasons == ["password sign-in is turned off"] * 2
    # Signing in with the provider still works.
    assert sign_in(oidc, "bob")[1]["Location"] == "/executions/"


def test_break_glass_lets_a_superuser_in_and_no_one_else(
    oidc, settings, viewer, admin_user, password
):
    settings.QFLOWUI_PASSWORD_LOGIN = False
    page = Client().get("/accounts/break-glass/").content.decode()
    assert "Break-glass sign-in" in page and 'id="id_password"' in page
    assert "Sign in with" not in page

    not_super = Client()
    refused = not_super.post(
        "/accounts/break-glass/", {"username": viewer.username, "password": password}
    )
    superuser = Client()
    allowed = superuser.post(
        "/accounts/break-glass/", {"username": admin_user.username, "password": password}
    )

    assert refused.status_code == 200 and "did not match" in refused.content.decode()
    assert "_auth_user_id" not in not_super.session
    assert allowed.status_code == 302 and superuser.get("/audit/").status_code == 200
    [failed] = events(audit.LOGIN_FAILED)
    assert failed.detail["reason"] == "break-glass sign-in is for superusers only"
    [login] = events(audit.LOGIN)
    assert login.detail["method"] == "break-glass password"


def test_break_glass_locks_out_after_the_failure_limit(oidc, settings, admin_user, password):
    settings.QFLOWUI_PASSWORD_LOGIN = False
    client = Client()
    answers = [
        client.post("/accounts/break-glass/", {"username": admin_user.username, "password": "no"})
        for _ in range(5)
    ]
    right = client.post(
        "/accounts/break-glass/", {"username": admin_user.username, "password": password}
    )

    assert [a.status_code for a in answers] == [200] * 4 + [429]
    html = right.content.decode()
    assert right.status_code == 429 and "Too many failed sign-ins" in html
    assert "Break-glass sign-in" in html  # the break-glass form, with the message
    assert "_auth_user_id" not in client.session
    assert events(audit.LOCKED_OUT)


# --- sign-out ----------------------------------------------------------------------------


def test_sign_out_ends_the_provider_session_too(oidc):
    browser_at_provider = requests.Session()
    client = Client()
    finish(client, oidc.walk(start(client), "alice", session=browser_at_provider))
    id_token = client.session["oidc_id_token"]

    answer = client.post("/accounts/logout/")

    assert answer.status_code == 302
    assert answer["Clear-Site-Data"] == '"cache", "storage"'
    target = urlsplit(answer["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{oidc.issuer}/session/end"
    query = parse_qs(target.query)
    assert query["id_token_hint"] == [id_token]
    assert query["post_logout_redirect_uri"] == ["http://testserver/accounts/login/"]
    assert client.get("/executions/").status_code == 302  # signed out here
    # The provider accepts it: its "sign out?" page, not an error.
    confirm = browser_at_provider.get(answer["Location"], timeout=10)
    assert confirm.status_code == 200 and "logout" in confirm.text.lower()
    assert events(audit.LOGOUT)


def test_a_password_user_signs_out_locally(oidc, viewer, password):
    client = Client()
    client.post("/accounts/login/", {"username": viewer.username, "password": password})
    answer = client.post("/accounts/logout/")
    assert answer.status_code == 302 and answer["Location"] == "/accounts/login/"


def test_the_csp_lets_sign_out_reach_the_provider(oidc, client):
    policy = client.get("/accounts/login/")["Content-Security-Policy"]
    assert f"form-action 'self' {oidc.issuer}" in policy
