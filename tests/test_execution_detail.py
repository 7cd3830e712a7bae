"""`/executions/<id>/`: what the analyst sees, what it costs upstream, and how it degrades."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
from django.core.cache import cache

from qflowui.executions import graph as graphs
from qflowui.executions import services
from qflowui.mirror.models import Execution, Step, StepPayload
from qflowui.mirror.sync import mirror_sync
from qflowui.qflow import client_from_settings
from tests.test_execution_detail_support import (
    FakeQflow,
    component,
    failed,
    serve_fake,
    step,
    successful,
    upstream_calls,
    workflow_of,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_caches():
    cache.clear()
    services.memo_clear()


def _page(client, url: str, **headers):
    response = client.get(url, **headers)
    return response, response.content.decode()


def _live(client, execution_id: str):
    return client.get(f"/executions/{execution_id}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="live")


def _graph_nodes(html: str) -> dict[str, str]:
    return dict(
        re.findall(r'<g class="node [^"]*" data-node-id="([^"]+)" data-status="([^"]+)"', html)
    )


# --- cost -----------------------------------------------------------------------------------


def test_the_first_view_of_a_finished_execution_costs_at_most_three_calls_and_later_views_none(
    simulator, viewer_client
):
    ex = successful(simulator)

    before = len(simulator.calls)
    first, _ = _page(viewer_client, f"/executions/{ex.id}/")
    first_calls = upstream_calls(simulator, before)

    before = len(simulator.calls)
    second, _ = _page(viewer_client, f"/executions/{ex.id}/")
    fragment = _live(viewer_client, ex.id)
    panel = viewer_client.get(f"/executions/{ex.id}/steps/{ex.steps[0].node_id}/")

    assert first.status_code == second.status_code == panel.status_code == 200
    assert 1 <= len(first_calls) <= 3, first_calls
    assert upstream_calls(simulator, before) == []
    assert fragment.status_code == 286
    row = Execution.objects.get(pk=ex.id)
    assert row.is_terminal and row.steps_synced_at is not None
    assert Step.objects.filter(execution=row).count() == len(ex.steps)


def test_an_execution_mirrored_by_the_sync_without_steps_is_completed_in_at_most_two_calls(
    simulator, viewer_client
):
    ex = successful(simulator)
    mirror_sync(workflow_ids=[ex.workflow_id])
    assert Execution.objects.get(pk=ex.id).steps_synced_at is None

    before = len(simulator.calls)
    response, _ = _page(viewer_client, f"/executions/{ex.id}/")

    assert response.status_code == 200
    assert len(upstream_calls(simulator, before)) <= 2
    assert Execution.objects.get(pk=ex.id).steps_synced_at is not None


# --- what the page shows ----------------------------------------------------------------------


def test_the_header_shows_status_workflow_id_times_source_categories_variables_and_tags(
    simulator, viewer_client
):
    ex = successful(simulator)
    wf = workflow_of(simulator, ex)

    response, html = _page(viewer_client, f"/executions/{ex.id}/")

    assert response.status_code == 200
    assert 'class="badge badge-success">Success<' in html
    assert f'href="/executions/?workflow={wf.id}"' in html
    assert wf.name in html
    assert f'data-copy="{ex.id}"' in html
    row = Execution.objects.get(pk=ex.id)
    assert f"{row.started_at:%Y-%m-%d %H:%M:%S} UTC" in html
    assert f"{row.ended_at:%Y-%m-%d %H:%M:%S} UTC" in html
    assert ex.source in html
    assert "Clouds" in html and wf.cloud in html
    assert f"created_by={ex.created_by}" in html
    for variable in ex.variable_strings:
        assert variable.split("=")[0] in html
    assert "Run again" not in html


def test_a_failed_execution_names_the_failed_step_and_its_error_first(simulator, viewer_client):
    ex = failed(simulator)
    bad = next(s for s in ex.steps if s.status == "Failed")

    _, html = _page(viewer_client, f"/executions/{ex.id}/")

    failure = html[html.index('class="failure"') : html.index('class="facts"')]
    assert "Failed at step" in failure
    assert f"steps/{bad.node_id}/" in failure
    assert bad.error.split(":")[0] in failure
    assert html.index('class="failure"') < html.index('class="graph-panel"')
    assert 'class="row-failed"' in html
    assert "tl-failed" in html


def test_the_graph_has_a_node_per_component_with_each_steps_status(simulator, viewer_client):
    ex = failed(simulator)
    wf = workflow_of(simulator, ex)

    _, html = _page(viewer_client, f"/executions/{ex.id}/")

    nodes = _graph_nodes(html)
    expected = {c["id"]: "not-reached" for c in wf.components}
    expected.update({s.node_id: s.status for s in ex.steps})
    assert nodes == expected
    edges = sum(
        len(c["next"]) if isinstance(c["next"], list | dict) else (1 if c["next"] else 0)
        for c in wf.components
    )
    assert len(re.findall(r'class="edge edge-(?:taken|idle)"', html)) == edges


def test_a_parent_and_its_child_execution_link_to_each_other(simulator, viewer_client):
    now, oldest = simulator.now_ms(), simulator.window_start() + 86_400_000
    ds = simulator.dataset()
    parent_id, _, child_id = next(
        (p, n, c)
        for p, n, c in ds.linked
        if ds.execution(p).start_ms > oldest and ds.execution(c).end_ms < now - 60_000
    )

    _, parent_html = _page(viewer_client, f"/executions/{parent_id}/")
    _, child_html = _page(viewer_client, f"/executions/{child_id}/")
    _, parent_again = _page(viewer_client, f"/executions/{parent_id}/")

    assert f'href="/executions/{child_id}/" data-related="child"' in parent_html
    assert f'data-linked-execution="{child_id}"' in parent_html
    assert f'href="/executions/{parent_id}/" data-related="parent"' in child_html
    assert f'data-linked-execution="{parent_id}"' in child_html
    # Once the child is mirrored, the parent shows its workflow and status.
    child = ds.execution(child_id)
    assert workflow_of(simulator, child).name in parent_again.split('data-related="child"')[1][:400]


def test_a_step_named_in_the_query_string_opens_its_panel_on_the_server(simulator, viewer_client):
    ex = successful(simulator)
    node = ex.steps[1].node_id

    _, html = _page(viewer_client, f"/executions/{ex.id}/?step={node}")

    panel = html[html.index('id="step-panel"') :]
    assert f'data-step="{node}"' in panel
    assert f"steps/{node}/input/tree" in panel and f"steps/{node}/output/tree" in panel


def test_run_again_is_offered_to_users_allowed_to_run(simulator, client, admin_user):
    ex = successful(simulator)
    client.force_login(admin_user)

    _, html = _page(client, f"/executions/{ex.id}/")

    assert f'href="/runs/new/?from={ex.id}"' in html


def test_pages_need_a_login(simulator, client):
    ex = successful(simulator)
    for url in (f"/executions/{ex.id}/", f"/executions/{ex.id}/export.json"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- failure modes ----------------------------------------------------------------------------


def test_an_execution_unknown_everywhere_is_a_clear_404(simulator, viewer_client):
    missing = uuid.uuid4()

    response, html = _page(viewer_client, f"/executions/{missing}/")
    not_a_uuid = viewer_client.get("/executions/not-a-uuid/")

    assert response.status_code == 404
    assert "Execution not found" in html and str(missing) in html
    assert not_a_uuid.status_code == 404


def test_with_qflow_down_a_mirrored_execution_renders_from_the_mirror_with_a_notice(
    simulator, viewer_client
):
    ex = successful(simulator)
    mirror_sync(workflow_ids=[ex.workflow_id])
    simulator.inject("status", path=r"^/qflowapi/", status=503, times=None)

    response, html = _page(viewer_client, f"/executions/{ex.id}/")

    assert response.status_code == 200
    assert "QFlow could not be reached" in html
    assert ex.id in html


def test_with_qflow_down_an_unknown_execution_says_so_without_a_500(simulator, viewer_client):
    ex = successful(simulator)
    simulator.inject("status", path=r"^/qflowapi/", status=502, times=None)

    response, html = _page(viewer_client, f"/executions/{ex.id}/")

    assert response.status_code == 503
    assert "could not be asked" in html


def test_a_malformed_answer_gives_a_notice_not_a_traceback(simulator, viewer_client):
    ex = successful(simulator)
    mirror_sync(workflow_ids=[ex.workflow_id])
    simulator.inject("malformed", path=rf"^/qflowapi/v1/executions/{ex.id}$", times=None)

    response, html = _page(viewer_client, f"/executions/{ex.id}/")

    assert response.status_code == 200
    assert "QFlow could not be reached" in html or "QFlow" in html.split('class="notice"')[1][:300]


def test_a_slow_qflow_is_given_up_on_quickly_and_the_mirror_shown(
    simulator, viewer_client, settings
):
    ex = successful(simulator)
    mirror_sync(workflow_ids=[ex.workflow_id])
    settings.QFLOW_TIMEOUT_SECONDS = 0.5
    simulator.inject("latency", path=r"^/qflowapi/v1/executions/", seconds=6, times=None)

    started = time.monotonic()
    response, html = _page(viewer_client, f"/executions/{ex.id}/")

    assert response.status_code == 200
    assert "timed out" in html
    # The page gave up at the timeout instead of waiting for the 6 s answer.
    assert time.monotonic() - started < 4


# --- live --------------------------------------------------------------------------------------


def test_a_running_execution_polls_every_5_s_until_it_ends_and_then_answers_286(
    simulator, viewer_client
):
    simulator.configure(run_min_seconds=1, run_max_seconds=2, run_status="success")
    wf = next(w for w in simulator.dataset().workflows if len(w.components) <= 8)
    run = client_from_settings().run_workflow(wf.id, input={}, variables={})

    _, html = _page(viewer_client, f"/executions/{run.execution_id}/")
    assert 'hx-trigger="every 5s"' in html
    assert "Running" in html

    statuses = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        response = _live(viewer_client, run.execution_id)
        statuses.append(response.status_code)
        if response.status_code == 286:
            break
        assert response.status_code == 200
        assert 'hx-trigger="every 5s"' in response.content.decode()
        time.sleep(0.7)

    assert statuses[-1] == 286, statuses
    final = response.content.decode()
    assert "hx-trigger" not in final.split(">")[0]
    assert 'id="live"' in final and "<html" not in final
    before = len(simulator.calls)
    _page(viewer_client, f"/executions/{run.execution_id}/")
    assert upstream_calls(simulator, before) == []


# --- export -----------------------------------------------------------------------------------


def test_the_export_is_one_json_file_with_the_execution_its_steps_and_their_payloads(
    simulator, viewer_client
):
    ex = failed(simulator)

    response = viewer_client.get(f"/executions/{ex.id}/export.json")
    before = len(simulator.calls)
    again = viewer_client.get(f"/executions/{ex.id}/export.json")

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    document = json.loads(response.content)
    assert document["execution"]["id"] == ex.id
    assert document["execution"]["status"] == "Failed"
    assert [s["nodeId"] for s in document["steps"]] == [s.node_id for s in ex.steps]
    assert all("input" in s and "output" in s for s in document["steps"])
    assert any(s["output"] for s in document["steps"])
    assert StepPayload.objects.filter(execution_id=ex.id).count() == 2 * len(ex.steps)
    assert again.status_code == 200 and upstream_calls(simulator, before) == []


# --- graph fallbacks ----------------------------------------------------------------------------


def test_without_graphviz_the_page_lists_the_steps_in_order_instead(
    simulator, viewer_client, monkeypatch
):
    monkeypatch.setattr(graphs, "dot_path", lambda: None)
    ex = failed(simulator)
    wf = workflow_of(simulator, ex)

    response, html = _page(viewer_client, f"/executions/{ex.id}/")

    assert response.status_code == 200
    assert "<svg" not in html.split('class="graph-panel"')[1].split("</section>")[0]
    assert "Graphviz" in html
    listed = re.findall(r'<li class="st-[^"]+" data-node-id="([^"]+)"', html)
    assert listed[: len(ex.steps)] == [s.node_id for s in ex.steps]
    assert sorted(listed) == sorted(c["id"] for c in wf.components)
    assert "Show the graph anyway" not in html


def test_a_workflow_of_more_than_200_steps_is_listed_with_a_way_to_draw_it_anyway(
    httpserver, settings, viewer_client
):
    components = [component("trigger", "Trigger", "trigger", "n0")]
    components += [component(f"n{i}", f"Step {i}", "action", f"n{i + 1}") for i in range(239)]
    components.append(component("n239", "Last", "notification"))
    fake = serve_fake(
        httpserver,
        settings,
        FakeQflow(
            components=components,
            steps=[step("trigger", "trigger", "Success", 1), step("n0", "action", "Failed", 2)],
        ),
    )
    execution_id = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"

    _, listed = _page(viewer_client, f"/executions/{execution_id}/")
    _, drawn = _page(viewer_client, f"/executions/{execution_id}/?graph=force")

    assert "241 steps" in listed and 'href="?graph=force"' in listed
    assert len(re.findall(r'<li class="st-[^"]+" data-node-id=', listed)) == 241
    assert len(_graph_nodes(drawn)) == 241
    assert _graph_nodes(drawn)["n0"] == "Failed"
    assert len([c for c in fake.calls if "/qflowapi/" in c]) <= 3


def test_strings_longer_than_the_mirrors_columns_are_clipped_not_a_500(
    httpserver, settings, viewer_client
):
    long = "x" * 600
    serve_fake(
        httpserver,
        settings,
        FakeQflow(
            workflow_name=long,
            components=[component("trigger", long, long)],
            steps=[step("trigger", long, long, 1)],
            execution={"source": long, "executionType": long, "status": "Failed" + long},
            workflow_tags=[long],
        ),
    )

    response, html = _page(viewer_client, "/executions/aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee/")

    assert response.status_code == 200
    assert "x" * 200 in html  # the workflow name is shown whole (500 characters fit)
    row = Execution.objects.get()
    assert len(row.source) == 64 and row.source.endswith("…")
    assert len(Step.objects.get().node_type) == 64
