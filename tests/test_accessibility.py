"""axe-core (a real third-party accessibility checker, driven by axe-playwright-python) finds
no serious or critical violation on the pages an analyst works in."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone

from qflowui.mirror.models import Execution
from tests.test_executions_list import make_execution, make_workflow
from tests.test_mirror_failures import _failed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Axe()


def serious(page) -> list[str]:
    results = AXE.run(page)
    found = []
    for violation in results.response["violations"]:
        if violation.get("impact") in ("serious", "critical"):
            targets = [n.get("target") for n in violation.get("nodes", [])][:3]
            what = f"{violation['id']} ({violation['impact']}): {violation['help']}"
            found.append(f"{what} {targets}")
    return found


def test_the_analyst_pages_have_no_serious_accessibility_violation(
    page, live_server, admin_user, login
):
    wf = make_workflow()
    failed = _failed(wf, "ThrottlingException: Rate exceeded", ago=timedelta(minutes=5))
    make_execution(wf, ago=timedelta(minutes=1))
    Execution.objects.update(steps_synced_at=timezone.now())
    login(page, admin_user)
    pages = [
        "/executions/",
        "/executions/?status=failed&range=24h",
        f"/executions/{failed.id}/",
        f"/executions/{failed.id}/?step=node-stop",
        "/failures/",
        "/runs/",
        "/runs/new/",
        "/workflows/",
    ]
    problems = {}
    for path in pages:
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        found = serious(page)
        if found:
            problems[path] = found
    assert problems == {}
