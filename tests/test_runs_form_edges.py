"""The run form's edges: messages name fields as the page shows them, the preview warns (and
does not refuse) about a variable the workflow does not declare or an override for another
cloud, the page gets to the preview after Preview, and the history shows each run's execution
(short id and status) in a bounded number of queries.

No broker and no QFlow here: enqueues are recorded (`sent`), and nothing reaches QFlow.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import re
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from qflowui.mirror import status as st
from qflowui.mirror.models import Execution, Workflow
from qflowui.runs.models import Run, RunState
from tests.test_runs_support import *  # noqa: F403 - the fixtures runner, runner_client, sent...
from tests.test_runs_support import fake_workflow, form_data

pytestmark = pytest.mark.django_db


def _text(fragment: str) -> str:
    """Visible text of an HTML fragment (tags dropped, entities decoded)."""
    return html_lib.unescape(re.sub(r"<[^>]+>", "", fragment))


def _summary(response) -> str:
    match = re.search(r"<p [^>]*data-error-summary>(.*?)</p>", response.content.decode(), re.S)
    assert match, "no error summary on the page"
    return _text(match.group(1))


def _warnings(response) -> list[str]:
    found = re.findall(r"<p [^>]*data-preview-warning>(.*?)</p>", response.content.decode(), re.S)
    return [_text(w) for w in found]


def _digest(response) -> str:
    return re.search(r'name="preview_digest" value="([0-9a-f]+)"', response.content.decode())[1]


# --- messages name fields as the user sees them ---------------------------------------------


def test_the_error_summary_names_custom_variables_as_the_page_shows_them(runner_client, sent):
    wf = fake_workflow()
    data = form_data(
        wf,
        action="preview",
        input="[1]",
        connectorId="not-a-uuid",
        var_key_0="depthCount",
        var_type_0="Integer",
        var_value_0="deep",
        var_value_1="a value without a name",
        var_key_2="flag",
        var_type_2="Number",
        var_value_2="1",
    )
    response = runner_client.post("/runs/new/", data)

    assert response.status_code == 400
    summary = _summary(response)
    assert summary == (
        "Some values need fixing: Input, connectorId, Custom variable 1 value, "
        "Custom variable 2 name, Custom variable 3 type. Nothing was run."
    )
    assert "var_" not in summary
    html = response.content.decode()
    # Each name links to its field, and is the field's accessible name there.
    assert '<a href="#id_var_value_0">Custom variable 1 value</a>' in html
    assert 'id="id_var_value_0" value="deep" aria-label="Custom variable 1 value"' in html
    assert 'aria-label="Custom variable 3 type"' in html
    assert not Run.objects.exists() and not sent


def test_custom_variables_are_numbered_by_their_row_on_the_page_not_by_the_posted_name(
    runner_client, sent
):
    wf = fake_workflow()
    # A form whose rows were posted as 7 and 40 (e.g. rows removed by hand): the page shows
    # them as its rows 1 and 2, after the empty spare one.
    data = form_data(
        wf, var_key_7="dryRun", var_type_7="Boolean", var_value_7="maybe", var_value_40="x"
    )
    response = runner_client.post("/runs/new/", data)

    form = response.context["form"]
    assert form.row_numbers == [0, 7, 40]
    assert form["var_value_7"].label == "Custom variable 2 value"
    assert _summary(response) == (
        "Some values need fixing: Custom variable 2 value, Custom variable 3 name. Nothing was run."
    )
    assert not Run.objects.exists()


def test_a_form_with_only_a_bad_submission_key_has_no_empty_summary(runner_client, sent):
    wf = fake_workflow()
    response = runner_client.post("/runs/new/", form_data(wf, idempotency_key="nope"))

    html = response.content.decode()
    assert response.status_code == 400
    assert "submission key is damaged" in html
    assert "data-error-summary" not in html and "Some values need fixing" not in html


# --- warnings in the preview, never a refusal ------------------------------------------------


def test_an_undeclared_variable_and_a_foreign_override_warn_and_the_run_can_still_be_confirmed(
    runner_client, sent, django_capture_on_commit_callbacks
):
    wf = fake_workflow(cloud="AWS")  # declares region, credentials, depthCount
    fields = {
        "region": "eu-west-1",
        "project": "gcp-qualys-demo",
        "resourceGroup": "DefaultResourceGroup-CIN",
        "var_key_0": "depthCount",
        "var_type_0": "Integer",
        "var_value_0": "3",
        "var_key_1": "dryRun",
        "var_type_1": "Boolean",
        "var_value_1": "true",
    }
    data = form_data(wf, action="preview", **fields)
    preview = runner_client.post("/runs/new/", data)

    assert preview.status_code == 200
    warnings = _warnings(preview)
    assert warnings == [
        "Warning: dryRun is not a variable this workflow declares: "
        "QFlow will most likely ignore it.",
        "Warning: resourceGroup (Azure) and project (GCP) are overrides for another cloud: "
        "this workflow runs on AWS, so QFlow will most likely ignore them.",
    ]
    html = preview.content.decode()
    assert "warnings do not stop the run" in html
    assert 'value="confirm"' in html  # still offered
    assert not Run.objects.exists()

    confirm = {**data, "action": "confirm", "preview_digest": _digest(preview)}
    with django_capture_on_commit_callbacks(execute=True):
        response = runner_client.post("/runs/new/", confirm)
        again = runner_client.post("/runs/new/", confirm)  # a second click: the same run

    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert again.status_code == 302 and again["Location"] == f"/runs/{run.pk}/"
    assert run.state == RunState.QUEUED
    assert run.variables == {
        "region": "eu-west-1",
        "resourceGroup": "DefaultResourceGroup-CIN",
        "project": "gcp-qualys-demo",
        "depthCount": 3,
        "dryRun": True,
    }
    assert sent == [("runs.submit", (run.pk,))]


def test_declared_variables_and_the_workflows_own_cloud_give_no_warning(runner_client):
    wf = fake_workflow(cloud="AWS")
    data = form_data(
        wf,
        action="preview",
        region="eu-west-1",
        connectorId="aa70acae-6ea8-3acf-b504-f327855b316a",  # any cloud
        var_key_0="depthCount",
        var_type_0="Integer",
        var_value_0="3",
    )
    response = runner_client.post("/runs/new/", data)

    assert response.status_code == 200 and "data-preview" in response.content.decode()
    assert _warnings(response) == []


def test_a_variable_differing_only_in_case_says_which_one_is_declared(runner_client):
    wf = fake_workflow()
    data = form_data(
        wf, action="preview", var_key_0="DepthCount", var_type_0="Integer", var_value_0="3"
    )
    [warning] = _warnings(runner_client.post("/runs/new/", data))

    assert "DepthCount is not a variable this workflow declares" in warning
    assert "it declares depthCount" in warning


@pytest.mark.parametrize(
    ("cloud", "fields", "named"),
    [
        ("Azure", {"region": "eu-west-1"}, "region (AWS)"),
        ("GCP", {"credentials_azure": "@aa70acae-6ea8-3acf-b504-f327855b316a"}, "(Azure)"),
        ("OCI", {"project": "gcp-qualys-demo"}, "project (GCP)"),
        ("AZURE", {"oci_region": "ap-hyderabad-1"}, "oci_region (OCI)"),
    ],
)
def test_an_override_for_another_cloud_warns(runner_client, cloud, fields, named):
    wf = fake_workflow(cloud=cloud)
    [warning] = _warnings(
        runner_client.post("/runs/new/", form_data(wf, action="preview", **fields))
    )

    assert named in warning and "is an override for another cloud" in warning


def test_without_a_mirrored_definition_variables_are_not_judged(runner_client):
    wf = Workflow.objects.create(id=uuid.uuid4(), name="Not synced yet", cloud="AWS")
    data = form_data(wf, action="preview", var_key_0="anything", var_value_0="x")
    response = runner_client.post("/runs/new/", data)

    assert _warnings(response) == []
    assert "could not be checked against the variables it declares" in _text(
        response.content.decode()
    )


# --- getting to the preview --------------------------------------------------------------------


def test_preview_posts_to_the_preview_fragment_and_the_preview_can_take_focus(runner_client):
    wf = fake_workflow()
    form = runner_client.get(f"/runs/new/?workflow={wf.id}").content.decode()
    preview = runner_client.post("/runs/new/", form_data(wf, action="preview")).content.decode()

    # Without JavaScript, the browser scrolls to #preview; runs.js refines it.
    assert 'value="preview" formaction="/runs/new/#preview"' in form
    assert 'action="/runs/new/"' in form  # Confirm leads to the run page, not to a fragment
    assert 'id="preview" tabindex="-1"' in preview
    assert "<script>" not in preview and "style=" not in preview


def test_a_confirm_after_a_change_says_so_inside_the_new_preview(runner_client, sent):
    wf = fake_workflow()
    first = runner_client.post("/runs/new/", form_data(wf, action="preview", region="eu-west-1"))
    data = form_data(wf, region="eu-west-2", preview_digest=_digest(first))
    html = runner_client.post("/runs/new/", data).content.decode()

    section = html[html.index('id="preview"') :]
    assert "The form changed after the preview" in section[: section.index("</section>")]
    assert not Run.objects.exists()


# --- the history ---------------------------------------------------------------------------


def _runs(user, workflow: Workflow, count: int, *, mirrored: int) -> list[Run]:
    """`count` submitted runs, the first `mirrored` of them with their execution mirrored."""
    runs = []
    for n in range(count):
        execution_id = uuid.uuid4()
        runs.append(
            Run.objects.create(
                idempotency_key=uuid.uuid4(),
                created_by=user,
                workflow=workflow,
                workflow_name=workflow.name,
                variables={"region": "eu-west-1"},
                body_sha256=hashlib.sha256(str(n).encode()).hexdigest(),
                state=RunState.SUBMITTED,
                execution_id=execution_id,
            )
        )
        if n < mirrored:
            status = ("Success", "Failed", "Running")[n % 3]
            cls = st.status_class(status)
            Execution.objects.create(
                id=execution_id,
                workflow=workflow,
                status=status,
                status_class=cls,
                is_terminal=cls in st.TERMINAL_CLASSES,
                started_at=timezone.now() - timedelta(minutes=n),
                last_synced_at=timezone.now(),
            )
    return runs


def _row(html: str, run: Run) -> str:
    return re.search(rf'<tr data-run-id="{run.pk}">(.*?)</tr>', html, re.S).group(1)


def test_the_history_shows_each_executions_short_id_and_status(runner_client, runner):
    wf = fake_workflow()
    failed, unsynced = (
        _runs(runner, wf, 1, mirrored=1)[0],
        _runs(runner, wf, 1, mirrored=0)[0],
    )
    Execution.objects.filter(pk=failed.execution_id).update(status="Failed", status_class="failed")
    queued = Run.objects.create(
        idempotency_key=uuid.uuid4(),
        created_by=runner,
        workflow=wf,
        body_sha256="0" * 64,
    )

    html = runner_client.get("/runs/").content.decode()

    row = _row(html, failed)
    short = str(failed.execution_id)[:8]
    assert f"<code>{short}</code>" in row
    assert str(failed.execution_id)[8:] not in _text(row)  # the short id only (full in the link)
    assert f'href="/executions/{failed.execution_id}/"' in row
    assert '<span class="badge badge-failed">Failed</span>' in row
    row = _row(html, unsynced)
    assert f"<code>{str(unsynced.execution_id)[:8]}</code>" in row and "not synced yet" in row
    assert "badge" not in row
    assert "—" in _row(html, queued) and "/executions/" not in _row(html, queued)


def test_the_history_costs_the_same_queries_for_2_runs_or_50(client, runner):
    wf = fake_workflow()
    client.force_login(runner)
    _runs(runner, wf, 2, mirrored=2)
    client.get("/runs/")  # warm: session, permissions
    with CaptureQueriesContext(connection) as few:
        small = client.get("/runs/").content.decode()
    _runs(runner, wf, 48, mirrored=30)
    with CaptureQueriesContext(connection) as many:
        large = client.get("/runs/").content.decode()

    assert small.count("data-run-id=") == 2 and large.count("data-run-id=") == 50
    assert large.count('class="badge badge-') == 32
    assert len(many) == len(few) <= 8, [q["sql"] for q in many.captured_queries]
    executions = [q for q in many.captured_queries if '"mirror_execution"' in q["sql"]]
    assert len(executions) == 1
