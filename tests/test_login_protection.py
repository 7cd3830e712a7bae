"""Repeated failed sign-ins lock a user name out from that address, on the site's login form
and on the admin's; the right password is refused too until the cool-off ends or staff
unlock it; every step is in the audit log."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from axes.models import AccessAttempt
from django.db.models import F
from django.test import Client

from qflowui.runs.models import AuditEvent

pytestmark = pytest.mark.django_db

ADDRESS = "203.0.113.7"
OTHER_ADDRESS = "203.0.113.99"
WRONG = "not-the-password"
LOCK_MESSAGE = "Too many failed sign-ins for this user from your address."


def sign_in(client: Client, username: str, password: str, *, addr: str = ADDRESS, **extra):
    path = extra.pop("path", "/accounts/login/")
    return client.post(
        path, {"username": username, "password": password}, REMOTE_ADDR=addr, **extra
    )


def lock(client: Client, username: str, *, addr: str = ADDRESS, path: str = "/accounts/login/"):
    """Five wrong passwords; returns the answers."""
    return [sign_in(client, username, WRONG, addr=addr, path=path) for _ in range(5)]


def signed_in(client: Client) -> bool:
    return client.get("/executions/").status_code == 200


def expected_until() -> str:
    """What the message must say: the last failure + 15 minutes, rounded up, in UTC."""
    last = AccessAttempt.objects.order_by("-attempt_time").first().attempt_time
    until = (last + timedelta(minutes=15)).astimezone(UTC)
    minute = until.replace(second=0, microsecond=0)
    if minute < until:
        minute += timedelta(minutes=1)
    if minute.date() != datetime.now(UTC).date():  # near midnight: the date too
        return f"{minute:%Y-%m-%d %H:%M} UTC"
    return f"{minute:%H:%M} UTC"


def test_five_failures_lock_the_name_and_the_right_password_is_refused_on_the_form(
    viewer, password
):
    client = Client()
    answers = lock(client, viewer.username)
    right = sign_in(client, viewer.username, password)

    for early in answers[:4]:
        assert early.status_code == 200
        assert "did not match" in early.content.decode()
    assert answers[4].status_code == 429  # the fifth failure sets the lock and says so
    html = right.content.decode()
    assert right.status_code == 429
    assert LOCK_MESSAGE in html
    assert f"Try again after {expected_until()}, or ask an administrator to unlock you." in html
    assert 'id="id_username"' in html and 'id="id_password"' in html  # the form, not a bare page
    assert f'value="{viewer.username}"' in html
    assert int(right["Retry-After"]) > 14 * 60
    assert not signed_in(client)


def test_the_lock_is_per_name_and_address(viewer, admin_user, password):
    lock(Client(), viewer.username)

    elsewhere = Client()
    same_address_other_user = Client()
    from_elsewhere = sign_in(elsewhere, viewer.username, password, addr=OTHER_ADDRESS)
    other_user = sign_in(same_address_other_user, admin_user.username, password)

    assert from_elsewhere.status_code == 302 and from_elsewhere["Location"] == "/executions/"
    assert signed_in(elsewhere)
    assert other_user.status_code == 302 and signed_in(same_address_other_user)


def test_a_forwarded_for_header_does_not_change_the_address(viewer, password):
    client = Client()
    for n in range(5):
        sign_in(client, viewer.username, WRONG, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")
    spoofed = sign_in(client, viewer.username, password, HTTP_X_FORWARDED_FOR="198.51.100.200")

    assert spoofed.status_code == 429 and LOCK_MESSAGE in spoofed.content.decode()
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ADDRESS}


def test_the_lock_ends_after_the_cool_off(viewer, password):
    client = Client()
    lock(client, viewer.username)
    assert sign_in(client, viewer.username, password).status_code == 429

    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=16))
    after = sign_in(client, viewer.username, password)

    assert after.status_code == 302 and signed_in(client)
    assert not AccessAttempt.objects.exists()  # a success clears the count


def test_the_cool_off_follows_the_setting(viewer, password, settings):
    settings.QFLOWUI_LOGIN_COOLOFF_MINUTES = 1
    client = Client()
    lock(client, viewer.username)
    refused = sign_in(client, viewer.username, password)
    assert refused.status_code == 429
    assert math.ceil(int(refused["Retry-After"]) / 60) == 1

    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(seconds=61))
    assert sign_in(client, viewer.username, password).status_code == 302


def test_fewer_failures_than_the_limit_do_not_lock_and_a_success_resets_the_count(viewer, password):
    client = Client()
    for _ in range(4):
        sign_in(client, viewer.username, WRONG)
    assert sign_in(client, viewer.username, password).status_code == 302
    client.post("/accounts/logout/", REMOTE_ADDR=ADDRESS)
    for _ in range(4):
        sign_in(client, viewer.username, WRONG)
    assert sign_in(client, viewer.username, password).status_code == 302


def test_the_admin_login_locks_the_same_way(admin_user, password):
    client = Client()
    answers = lock(client, admin_user.username, path="/admin/login/")
    right = sign_in(client, admin_user.username, password, path="/admin/login/")

    html = right.content.decode()
    assert [a.status_code for a in answers[:4]] == [200] * 4
    assert right.status_code == 429
    assert LOCK_MESSAGE in html and "ask an administrator to unlock you" in html
    assert 'id="login-form"' in html  # the admin's own form
    assert client.get("/admin/").status_code == 302


def test_failures_on_both_forms_add_up(admin_user, password):
    client = Client()
    for path in ("/accounts/login/", "/admin/login/") * 2 + ("/accounts/login/",):
        sign_in(client, admin_user.username, WRONG, path=path)
    assert sign_in(client, admin_user.username, password, path="/admin/login/").status_code == 429


def test_staff_unlock_a_user_from_the_users_admin(viewer, admin_user, password):
    locked = Client()
    lock(locked, viewer.username)
    assert sign_in(locked, viewer.username, password).status_code == 429

    staff = Client()
    staff.force_login(admin_user)
    page = staff.get("/admin/auth/user/")
    assert 'value="unlock_sign_in"' in page.content.decode()
    done = staff.post(
        "/admin/auth/user/",
        {"action": "unlock_sign_in", "_selected_action": [viewer.pk]},
        follow=True,
    )

    assert "Sign-in unlocked for vera.viewer" in done.content.decode()
    assert sign_in(locked, viewer.username, password).status_code == 302
    assert signed_in(locked)
    unlocked = AuditEvent.objects.get(action="auth.unlocked")
    assert unlocked.actor == admin_user and unlocked.target == "user vera.viewer"


def test_axes_lists_lockouts_in_the_admin_too(viewer, admin_user):
    lock(Client(), viewer.username)
    staff = Client()
    staff.force_login(admin_user)
    page = staff.get("/admin/axes/accessattempt/")
    assert page.status_code == 200 and "vera.viewer" in page.content.decode()


def test_every_step_is_in_the_audit_log_and_no_password_is_kept(viewer, admin_user, password):
    client = Client()
    lock(client, viewer.username)
    sign_in(client, viewer.username, password)  # refused: locked
    sign_in(Client(), viewer.username, password, addr=OTHER_ADDRESS)  # signs in
    client.post("/accounts/logout/", REMOTE_ADDR=ADDRESS)
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=16))
    sign_in(client, viewer.username, password)
    client.post("/accounts/logout/", REMOTE_ADDR=ADDRESS)

    staff = Client()
    staff.force_login(admin_user)
    html = staff.get("/audit/?user=vera").content.decode()

    assert html.count('data-action="auth.login_failed"') == 6
    assert html.count("wrong user name or password") == 5
    assert html.count("locked out") >= 1
    assert html.count('data-action="auth.locked_out"') == 1
    assert html.count('data-action="auth.login"') == 2
    assert html.count('data-action="auth.logout"') == 1
    assert ADDRESS in html and OTHER_ADDRESS in html
    failed = AuditEvent.objects.filter(action="auth.login_failed")
    assert {e.actor_name for e in failed} == {"vera.viewer"}
    assert {e.remote_addr for e in failed} == {ADDRESS}
    for event in AuditEvent.objects.all():
        stored = f"{event.actor_name} {event.target} {event.detail}"
        assert WRONG not in stored and password not in stored
    for attempt in AccessAttempt.objects.all():
        assert WRONG not in attempt.post_data and password not in attempt.post_data


def test_a_name_as_typed_is_truncated_and_kept_as_typed(db):
    typed = "Ünknown.User " + "x" * 200
    sign_in(Client(), typed[:150], WRONG)
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.actor_name == typed[:150] and event.actor is None
