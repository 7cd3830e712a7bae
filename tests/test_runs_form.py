"""The run form: what it shows, what it refuses, the preview, and the outbox row it writes.

No broker and no QFlow here: enqueues are recorded (`sent`), and nothing reaches QFlow.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest

from qflowui.runs.models import AuditEvent, Run, RunEvent, RunState
from tests.test_runs_support import *  # noqa: F403 - the fixtures runner, runner_client, sent...
from tests.test_runs_support import (
    fake_workflow,
    form_data,
)

pytestmark = pytest.mark.django_db


def _errors(response) -> str:
    """The text of every error message on the page."""
    html = response.content.decode()
    return " ".join(re.findall(r'class="field-errors?"[^>]*>(.*?)</(?:div|p)>', html, re.S))


def test_the_form_shows_the_mirrored_workflows_and_a_fresh_submission_key(runner_client):
    wf = fake_workflow()
    first = runner_client.get(f"/runs/new/?workflow={wf.id}")
    second = runner_client.get("/runs/new/")

    assert first.status_code == 200
    html = first.content.decode()
    assert f'<option value="{wf.id}" data-cloud="AWS" selected>' in html
    # The workflow's declared variables with their values, the credentials masked.
    assert 'data-variable="region"' in html and "us-east-1" in html
    row = re.search(r'data-variable="credentials">(.*?)</tr>', html, re.S).group(1)
    assert "********" in row and "aa70acae" not in row
    # A connector id is not a secret: the datalist offers the ones seen in the mirror.
    assert '<option value="aa70acae-6ea8-3acf-b504-f327855b316a">' in html
    key = re.search(r'name="idempotency_key" value="([0-9a-f-]{36})"', html).group(1)
    other = re.search(r'name="idempotency_key" value="([0-9a-f-]{36})"', second.content.decode())
    assert key != other.group(1)
    for name in ("input", "connectorId", "region", "resourceGroup", "project", "oci_region",
                 "compartment", "credentials", "credentials_azure", "credentials_gcp",
                 "var_key_0", "var_type_0", "var_value_0"):  # fmt: skip
        assert f'name="{name}"' in html, name
    assert "takes precedence" in html


def test_the_page_has_no_inline_script_or_style(runner_client):
    wf = fake_workflow()
    html = runner_client.get(f"/runs/new/?workflow={wf.id}").content.decode()

    assert "<script>" not in html and "onclick=" not in html and "style=" not in html
    assert 'src="/static/js/runs.js"' in html and 'href="/static/css/runs.css"' in html


def test_the_workflow_info_fragment_answers_htmx_alone(runner_client):
    wf = fake_workflow(cloud="GCP", name="Disable public GCS buckets")
    response = runner_client.get(
        f"/runs/new/?workflow={wf.id}", headers={"HX-Request": "true", "HX-Target": "workflow-info"}
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="workflow-info"')
    assert "Disable public GCS buckets" in html and "GCP" in html


def test_preview_shows_the_exact_body_with_only_the_overrides_set(runner_client, sent):
    wf = fake_workflow()
    data = form_data(
        wf,
        action="preview",
        connectorId="AA70ACAE-6EA8-3ACF-B504-F327855B316A",
        region="eu-west-1",
        var_key_0="depthCount",
        var_type_0="Integer",
        var_value_0="3",
        var_key_1="dryRun",
        var_type_1="Boolean",
        var_value_1="true",
        var_key_2="tags",
        var_type_2="List",
        var_value_2="a, b",
    )
    response = runner_client.post("/runs/new/", data)

    assert response.status_code == 200
    html = response.content.decode()
    preview = re.search(r"<pre class=\"json-preview\" data-preview>(.*?)</pre>", html, re.S).group(
        1
    )
    body = json.loads(preview.replace("&quot;", '"'))
    assert body == {
        "input": {"buckets": ["test-bucket-1"]},
        "variables": {
            "connectorId": "aa70acae-6ea8-3acf-b504-f327855b316a",
            "region": "eu-west-1",
            "depthCount": 3,
            "dryRun": True,
            "tags": ["a", "b"],
        },
    }
    assert 'value="confirm"' in html and data["idempotency_key"] in html
    assert not Run.objects.exists() and not sent


def test_a_body_without_overrides_sends_no_variables(runner_client):
    wf = fake_workflow()
    response = runner_client.post("/runs/new/", form_data(wf, action="preview", input="{}"))

    preview = re.search(r"data-preview>(.*?)</pre>", response.content.decode(), re.S).group(1)
    assert json.loads(preview.replace("&quot;", '"')) == {"input": {}}


def test_preview_says_connector_id_wins_over_legacy_credentials(runner_client):
    wf = fake_workflow()
    data = form_data(
        wf,
        action="preview",
        connectorId="aa70acae-6ea8-3acf-b504-f327855b316a",
        credentials="@bb70acae-6ea8-3acf-b504-f327855b316a",
    )
    html = runner_client.post("/runs/new/", data).content.decode()

    assert "QFlow uses connectorId" in html
    assert "&quot;credentials&quot;: &quot;@bb70acae-6ea8-3acf-b504-f327855b316a&quot;" in html


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"input": '{"a": 1,}'}, "input", "Invalid JSON"),
        ({"input": "[1, 2]"}, "input", "must be a JSON object"),
        ({"input": '"text"'}, "input", "must be a JSON object"),
        ({"connectorId": "not-a-uuid"}, "connectorId", "is not a valid connector id"),
        ({"region": "moon-west-1"}, "region", "is not an AWS region"),
        ({"resourceGroup": "bad/group"}, "resourceGroup", "Azure resource group"),
        ({"project": "X"}, "project", "GCP project id"),
        ({"oci_region": "Hyderabad"}, "oci_region", "OCI region"),
        ({"compartment": "compartment-1"}, "compartment", "OCID"),
        ({"credentials": "aws-prod"}, "credentials", "connector reference"),
        (
            {"var_key_0": "depth", "var_type_0": "Integer", "var_value_0": "deep"},
            "var_value_0",
            "not a whole number",
        ),
        (
            {"var_key_0": "flag", "var_type_0": "Boolean", "var_value_0": "maybe"},
            "var_value_0",
            "true or false",
        ),
        (
            {"var_key_0": "cfg", "var_type_0": "JSON", "var_value_0": "{x"},
            "var_value_0",
            "Not valid JSON",
        ),
        ({"var_key_0": "region", "var_value_0": "x"}, "var_key_0", "Use the region field"),
        ({"var_key_0": "1bad", "var_value_0": "x"}, "var_key_0", "variable name"),
        ({"var_value_0": "orphan"}, "var_key_0", "variable name"),
        ({"var_key_0": "n", "var_type_0": "Number", "var_value_0": "1"}, "var_type_0", "Choose"),
        ({"workflow": "7e5a1d0c-0000-4000-8000-000000000000"}, "workflow", "not a workflow known"),
        ({"idempotency_key": ""}, "idempotency_key", "submission key"),
    ],
)
def test_each_invalid_value_is_shown_and_nothing_is_enqueued(
    runner_client, sent, fields, field, message
):
    wf = fake_workflow()
    response = runner_client.post("/runs/new/", {**form_data(wf), **fields})

    assert response.status_code == 400
    assert message in response.content.decode()
    assert field in response.context["form"].errors
    assert not Run.objects.exists()
    assert not sent


def test_confirm_writes_one_queued_run_and_enqueues_it_after_commit(
    runner_client, runner, sent, django_capture_on_commit_callbacks
):
    wf = fake_workflow()
    data = form_data(wf, region="eu-west-1")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = runner_client.post("/runs/new/", data)

    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert run.state == RunState.QUEUED and run.created_by == runner
    assert run.idempotency_key == uuid.UUID(data["idempotency_key"])
    assert run.body() == {
        "input": {"buckets": ["test-bucket-1"]},
        "variables": {"region": "eu-west-1"},
    }
    assert len(callbacks) == 1 and sent == [("runs.submit", (run.pk,))]
    assert run.enqueue_attempts == 1 and run.enqueued_at is not None
    assert list(RunEvent.objects.values_list("state", flat=True)) == ["queued"]
    event = AuditEvent.objects.get(action="run.requested")
    assert event.actor == runner and event.target == f"run {run.pk}"
    assert event.detail["variables"] == {"region": "eu-west-1"}


def test_the_same_form_posted_twice_finds_the_same_run(runner_client, sent):
    wf = fake_workflow()
    data = form_data(wf)
    first = runner_client.post("/runs/new/", data)
    second = runner_client.post("/runs/new/", data, follow=True)

    run = Run.objects.get()
    assert first["Location"] == second.redirect_chain[0][0] == f"/runs/{run.pk}/"
    assert "already submitted" in second.content.decode()
    assert AuditEvent.objects.filter(action="run.duplicate").count() == 1


def test_a_key_reused_with_another_body_is_refused_clearly(runner_client, sent):
    wf = fake_workflow()
    data = form_data(wf)
    runner_client.post("/runs/new/", data)
    response = runner_client.post("/runs/new/", {**data, "region": "eu-west-2"})

    assert response.status_code == 409
    assert "already submitted for a different workflow or body" in response.content.decode()
    assert Run.objects.count() == 1
    assert AuditEvent.objects.filter(action="run.key_conflict").exists()


def test_a_key_reused_by_another_user_is_refused(client, runner, other_runner, sent):
    wf = fake_workflow()
    data = form_data(wf)
    client.force_login(runner)
    client.post("/runs/new/", data)
    client.force_login(other_runner)
    response = client.post("/runs/new/", data)

    assert response.status_code == 409
    assert "another user" in response.content.decode()
    assert Run.objects.get().created_by == runner


def test_confirm_after_a_change_shows_the_new_preview_instead_of_running(runner_client, sent):
    wf = fake_workflow()
    preview = runner_client.post("/runs/new/", form_data(wf, action="preview", region="eu-west-1"))
    digest = re.search(r'name="preview_digest" value="([0-9a-f]+)"', preview.content.decode())
    data = form_data(wf, region="eu-west-2", preview_digest=digest.group(1))
    response = runner_client.post("/runs/new/", data)

    assert response.status_code == 200
    assert "changed after the preview" in response.content.decode()
    assert not Run.objects.exists()


def test_a_viewer_without_the_permission_gets_403_and_the_attempt_is_audited(client, viewer, sent):
    wf = fake_workflow()
    client.force_login(viewer)
    page = client.get("/runs/new/")
    response = client.post("/runs/new/", form_data(wf))

    assert page.status_code == 403 and "Runners" in page.content.decode()
    assert response.status_code == 403
    assert not Run.objects.exists() and not sent
    denied = AuditEvent.objects.filter(action="run.denied", actor=viewer)
    assert denied.count() == 2
    assert denied.filter(target=f"workflow {wf.id}", detail__method="POST").exists()


def test_anonymous_users_are_sent_to_login(client):
    for url in ("/runs/", "/runs/new/", "/runs/1/", "/runs/audit/"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.post("/runs/new/", {}).status_code == 302
    assert not Run.objects.exists()


def test_the_audit_log_is_for_staff_only(client, viewer, admin_user, runner_client, sent):
    wf = fake_workflow()
    runner_client.post("/runs/new/", form_data(wf))
    client.force_login(viewer)
    assert client.get("/runs/audit/", follow=True).status_code == 403  # moved to /audit/
    client.force_login(admin_user)
    page = client.get("/runs/audit/", follow=True)

    html = page.content.decode()
    assert page.status_code == 200
    assert "run.requested" in html and "rita.runner" in html and "audit.denied" in html


def test_the_history_lists_runs_and_filters_to_mine(client, runner, other_runner, sent):
    wf = fake_workflow()
    client.force_login(other_runner)
    client.post("/runs/new/", form_data(wf, region="ap-south-1"))
    client.force_login(runner)
    client.post("/runs/new/", form_data(wf, region="eu-west-1"))

    everyone = client.get("/runs/").content.decode()
    mine = client.get("/runs/?mine=1").content.decode()
    assert everyone.count("data-run-id=") == 2 and "region=ap-south-1" in everyone
    assert mine.count("data-run-id=") == 1 and "region=eu-west-1" in mine
    assert 'data-run-state="queued"' in mine
    assert client.get("/runs/?mine=maybe&page=zz&state=bogus").status_code == 200


def test_the_run_page_shows_state_times_who_and_the_masked_body(runner_client, sent):
    wf = fake_workflow()
    data = form_data(wf, input='{"apiToken": "s3cr3t-value-here", "n": 1}')
    runner_client.post("/runs/new/", data)
    run = Run.objects.get()
    page = runner_client.get(f"/runs/{run.pk}/")
    fragment = runner_client.get(
        f"/runs/{run.pk}/", headers={"HX-Request": "true", "HX-Target": "run-status"}
    )

    html = page.content.decode()
    assert 'data-run-state="queued"' in html and "rita.runner" in html
    assert 'hx-trigger="every 2s"' in html
    assert "s3cr3t-value-here" not in html and "********" in html
    assert fragment.status_code == 200
    assert fragment.content.decode().lstrip().startswith('<div id="run-status"')
    Run.objects.filter(pk=run.pk).update(state=RunState.FAILED, error="QFlow said no")
    done = runner_client.get(
        f"/runs/{run.pk}/", headers={"HX-Request": "true", "HX-Target": "run-status"}
    )
    assert done.status_code == 286 and "QFlow said no" in done.content.decode()
    assert run.input["apiToken"] == "s3cr3t-value-here"  # stored as the user gave it


def test_the_data_migration_gives_runners_the_run_permission():
    from importlib import import_module

    from django.apps import apps
    from django.contrib.auth.models import Group

    Group.objects.filter(name__in=["Viewers", "Runners"]).delete()
    migration = import_module("qflowui.runs.migrations.0002_groups")

    class Editor:
        from django.db import connection

    migration.create_groups(apps, Editor)
    runners = Group.objects.get(name="Runners")
    viewers = Group.objects.get(name="Viewers")
    assert runners.permissions.filter(codename="run_workflow").exists()
    assert not viewers.permissions.filter(codename="run_workflow").exists()
