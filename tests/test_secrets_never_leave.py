"""No secret from QFlow reaches a page, a fragment, a download, the database or the log.

One hostile upstream (tests/secrets_upstream.py) carries every secret shape in every place
QFlow can put one; these tests open everything that shows that data and scan it all.
"""

from __future__ import annotations

import html
import logging
import re

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection

from qflowui.runs.models import Run
from qflowui.runs.services import run_submit
from tests import secrets_upstream as up
from tests.test_runs_support import runners_group

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def upstream(httpserver, settings):
    return up.serve(httpserver, settings)


@pytest.fixture
def runner_client(client, django_user_model, password):
    user = django_user_model.objects.create_user(username="rita.runner", password=password)
    user.groups.add(runners_group())
    user.is_staff = True  # staff also reads the audit log
    user.save()
    client.force_login(user)
    return client


def _leaks(text: str) -> list[str]:
    found = []
    for name, secret in up.SECRETS.items():
        if secret in text or html.escape(secret) in text:
            found.append(name)
    return found


def _get(client, url: str, **headers) -> str:
    response = client.get(url, **headers)
    assert response.status_code < 500, f"{url} answered {response.status_code}"
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return body.decode("utf-8", "replace")


def _every_text_in_the_database() -> str:
    """Every row of every table, as text (JSON columns included)."""
    chunks = []
    with connection.cursor() as cursor:
        for model in apps.get_models():
            table = model._meta.db_table
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def _pages(client, execution_id: str) -> dict[str, str]:
    base = f"/executions/{execution_id}"
    htmx = {"HTTP_HX_REQUEST": "true"}
    urls = {
        "list": "/executions/?range=all",
        "list failed": "/executions/?range=all&status=Failed",
        "list search": f"/executions/?range=all&q={execution_id[:8]}",
        "list fragment": ("/executions/?range=all", htmx),
        "detail": f"{base}/",
        "detail with step": f"{base}/?step=apply",
        "export": f"{base}/export.json",
        "other execution (QFlow 500)": f"/executions/{up.EXEC_B}/",
    }
    for node in ("trigger", "fetch", "apply"):
        urls[f"step {node}"] = f"{base}/steps/{node}/"
        urls[f"step {node} fragment"] = (f"{base}/steps/{node}/", htmx)
        for kind in ("input", "output"):
            tree = f"{base}/steps/{node}/{kind}/tree"
            urls[f"{node} {kind} tree"] = (tree, htmx)
            urls[f"{node} {kind} tree page"] = f"{tree}?path=/"
            urls[f"{node} {kind} search"] = (f"{tree}?q=Leak", htmx)
            urls[f"{node} {kind} search password"] = (f"{tree}?q=password", htmx)
            urls[f"{node} {kind} full strings"] = (f"{tree}?path=/result/message&full=1", htmx)
            urls[f"{node} {kind} download"] = f"{base}/steps/{node}/{kind}.json"
            urls[f"{node} {kind} subtree download"] = f"{base}/steps/{node}/{kind}.json?path=/event"
    pages = {}
    for name, target in urls.items():
        url, headers = target if isinstance(target, tuple) else (target, {})
        pages[name] = _get(client, url, **headers)
    return pages


def test_no_secret_from_qflow_reaches_a_page_the_database_or_the_log(
    upstream, runner_client, caplog
):
    caplog.set_level(logging.DEBUG)
    call_command("qflow_sync", stdout=open("/dev/null", "w"))  # noqa: SIM115

    pages = _pages(runner_client, up.EXEC_A)

    # The run form, "run again" from the leaky execution, a refused run and an accepted one.
    pages["run form from execution"] = _get(runner_client, f"/runs/new/?from={up.EXEC_A}")
    typed = up.S["typed into the run form"]
    refused = _post_run(runner_client, {"refuse": True, "db": {"password": typed}})
    accepted = _post_run(runner_client, {"db": {"password": typed}})
    for run in (refused, accepted):
        run_submit(run.pk)
        pages[f"run {run.pk}"] = _get(runner_client, f"/runs/{run.pk}/")
        pages[f"run {run.pk} status"] = _get(
            runner_client, f"/runs/{run.pk}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-status"
        )
    pages["runs"] = _get(runner_client, "/runs/")
    pages["audit"] = _get(runner_client, "/audit/", follow=True)

    # The upstream got the body exactly as typed...
    assert [p["input"]["db"]["password"] for p in upstream.posted] == [typed, typed]
    # ...and everything else holds no secret.
    leaks = {name: _leaks(text) for name, text in pages.items()}
    assert {name: found for name, found in leaks.items() if found} == {}
    assert _leaks(_every_text_in_the_database()) == []
    logged = caplog.text + "\n".join(str(r.msg) for r in caplog.records)
    assert _leaks(logged) == []

    # What is not a secret is still there to read.
    detail = html.unescape(pages["detail with step"])
    assert up.ORDINARY[0] in detail
    assert "postgres://dbadmin:********@db:5432/prod" in detail
    assert "prod-keypair" in pages["trigger input download"]
    assert "runner@gcp-qualys-demo.iam.gserviceaccount.com" in pages["trigger input download"]
    assert "AKIAIOSFODNN7LEAKID" in pages["trigger input download"]
    refused.refresh_from_db()
    accepted.refresh_from_db()
    assert refused.state == "failed" and "invalid input" in refused.error
    assert accepted.state == "submitted" and str(accepted.execution_id) == up.RUN_EXECUTION


def _post_run(client, data: dict) -> Run:
    import json

    before = set(Run.objects.values_list("pk", flat=True))
    response = client.post(
        "/runs/new/",
        {
            "workflow": up.WORKFLOW_ID,
            "input": json.dumps(data),
            "idempotency_key": up.new_key(),
            "action": "confirm",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    (run,) = Run.objects.exclude(pk__in=before)
    return run


def test_a_hostile_node_id_cannot_forge_a_log_line(caplog):
    caplog.set_level(logging.INFO)
    logging.getLogger("qflowui.test").warning(
        "step %s failed", "x\n2026-12-01 00:00:00 INFO fake line\x1b[31m token=abc123XYZ789"
    )
    (record,) = caplog.records
    assert "\n" not in record.getMessage() and "\x1b" not in record.getMessage()
    assert "\\n2026-12-01" in record.getMessage()
    assert "abc123XYZ789" not in caplog.text
    assert re.search(r"token=\*+", record.getMessage())
