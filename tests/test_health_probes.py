"""Container probes behind a production configuration: https redirect on, ALLOWED_HOSTS the
real domain. A health check speaks plain http to 127.0.0.1:8000 inside the container; it must
get 200, not a 301 to https nor a 400 for its Host."""

from __future__ import annotations

import pytest
from django.test import Client

PRODUCTION = {
    "SECURE_SSL_REDIRECT": True,
    "ALLOWED_HOSTS": ["qflowui.example.com"],
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
}


@pytest.fixture
def production(settings):
    for name, value in PRODUCTION.items():
        setattr(settings, name, value)
    # A new client builds its middleware now, with these settings.
    return Client()


def test_healthz_answers_a_probe_on_127_0_0_1_over_plain_http(production):
    response = production.get("/healthz", HTTP_HOST="127.0.0.1:8000")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_answers_a_probe_on_127_0_0_1_over_plain_http(production):
    response = production.get("/readyz", HTTP_HOST="127.0.0.1:8000")
    assert response.status_code in {200, 503}  # ready or not: a verdict, not a redirect
    assert response.json()["checks"]["database"] is True


def test_pages_still_get_the_redirect_and_the_host_check(production):
    # The probes' exemption is theirs alone.
    assert production.get("/accounts/login/", HTTP_HOST="127.0.0.1:8000").status_code == 400
    redirected = production.get("/accounts/login/", HTTP_HOST="qflowui.example.com")
    assert redirected.status_code == 301
    assert redirected["Location"] == "https://qflowui.example.com/accounts/login/"
