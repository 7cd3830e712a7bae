"""Every page needs a login; the probes, static files and the simulator's API do not."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/executions/", "/"])
def test_it_sends_anonymous_visitors_to_the_login_page(client, url):
    response = client.get(url, follow=True)
    assert response.redirect_chain[-1][0].startswith("/accounts/login/")
    assert b"Sign in to qflowui" in response.content


def test_the_login_page_has_a_csrf_protected_form(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in response.content
    assert b'id="id_username"' in response.content


def test_a_wrong_password_gets_a_clear_message(client, viewer):
    response = client.post("/accounts/login/", {"username": viewer.username, "password": "not-it"})
    assert response.status_code == 200
    assert b"did not match" in response.content


def test_a_right_password_lands_on_the_executions_page(client, viewer, password, simulator):
    response = client.post(
        "/accounts/login/", {"username": viewer.username, "password": password}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/executions/"
    assert response.status_code == 200


def test_pages_carry_a_strict_content_security_policy(client):
    csp = client.get("/accounts/login/").headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp


def test_htmx_is_served_from_our_own_static_files(client):
    page = client.get("/accounts/login/").content.decode()
    assert "/static/django_htmx/htmx-2.min.js" in page
    assert "http://" not in page.split("<body")[0].replace('xmlns="http://', "")


def test_sign_out_is_a_post_and_ends_the_session(viewer_client):
    response = viewer_client.post("/accounts/logout/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/accounts/login/")
    assert viewer_client.get("/executions/").status_code == 302
