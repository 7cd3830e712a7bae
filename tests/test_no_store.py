"""Every response behind the login tells the browser and any proxy to keep nothing."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from tests import secrets_upstream as up

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced(httpserver, settings):
    fake = up.serve(httpserver, settings)
    call_command("qflow_sync", stdout=open("/dev/null", "w"))  # noqa: SIM115
    return fake


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/executions/", {}),
        ("/executions/?range=all", {"HTTP_HX_REQUEST": "true"}),
        (f"/executions/{up.EXEC_A}/", {}),
        (f"/executions/{up.EXEC_A}/steps/apply/", {"HTTP_HX_REQUEST": "true"}),
        (f"/executions/{up.EXEC_A}/steps/trigger/input/tree", {"HTTP_HX_REQUEST": "true"}),
        (f"/executions/{up.EXEC_A}/steps/trigger/input.json", {}),
        (f"/executions/{up.EXEC_A}/export.json", {}),
        ("/runs/", {}),
        ("/runs/new/", {}),
        ("/audit/", {}),
    ],
)
def test_a_data_response_carries_no_store(synced, admin_client, url, headers):
    response = admin_client.get(url, **headers)

    assert response.status_code == 200, url
    assert response["Cache-Control"] == "no-store, private"


def test_a_run_page_carries_no_store(synced, admin_client):
    from qflowui.runs.models import Run

    admin_client.post(
        "/runs/new/",
        {
            "workflow": up.WORKFLOW_ID,
            "input": "{}",
            "idempotency_key": up.new_key(),
            "action": "confirm",
        },
    )
    run = Run.objects.get()

    for headers in ({}, {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "run-status"}):
        response = admin_client.get(f"/runs/{run.pk}/", **headers)
        assert response["Cache-Control"] == "no-store, private"


def test_signing_out_asks_the_browser_to_clear_what_it_holds(admin_client):
    response = admin_client.post("/accounts/logout/")

    assert response.status_code == 302
    assert response["Clear-Site-Data"] == '"cache", "storage"'
    assert response["Cache-Control"] == "no-store, private"
