"""`/executions/<id>/steps/<node_id>/` and its payloads: content, caching, trees, downloads."""

from __future__ import annotations

import json
import re
import time

import pytest
from django.core.cache import cache

from qflowui.executions import services
from qflowui.executions.jsontree import resolve
from qflowui.mirror.models import StepPayload
from qflowui.qflow import client_from_settings
from tests.test_execution_detail_support import failed, successful, upstream_calls

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _fresh_caches():
    cache.clear()
    services.memo_clear()


def _base(ex, node_id: str) -> str:
    return f"/executions/{ex.id}/steps/{node_id}/"


def _paths(html: str) -> list[str]:
    return re.findall(r'<li class="jt-n" data-p="([^"]*)"', html)


def _resource_step(ex):
    return next(s for s in ex.steps if s.node_type == "resource" and s.status == "Success")


def _expected_output(simulator, ex, node_id: str):
    return services.mask_payload(client_from_settings().get_step_output(ex.id, node_id))


def test_the_panel_shows_the_steps_status_times_elapsed_type_and_error(simulator, viewer_client):
    ex = failed(simulator)
    bad = next(s for s in ex.steps if s.status == "Failed")

    response = viewer_client.get(_base(ex, bad.node_id))
    html = response.content.decode()

    assert response.status_code == 200
    assert "<html" in html  # without htmx: a page of its own
    assert 'class="badge badge-failed">Failed<' in html
    assert bad.node_type in html
    assert "Started" in html and "Ended" in html and "Elapsed" in html
    assert bad.error.split(":")[0] in html
    assert 'id="payload-input"' in html and 'id="payload-output"' in html


def test_the_panel_fragment_for_htmx_is_only_the_panel(simulator, viewer_client):
    ex = successful(simulator)
    node = ex.steps[0].node_id

    html = viewer_client.get(_base(ex, node), **HTMX).content.decode()

    assert html.startswith('<article class="panel"')
    assert f'data-step="{node}"' in html


def test_payloads_are_masked_stored_and_then_served_from_the_cache_forever(
    simulator, viewer_client
):
    ex = successful(simulator)
    node = _resource_step(ex).node_id

    first_panel = viewer_client.get(_base(ex, node), **HTMX).content.decode()
    before = len(simulator.calls)
    tree = viewer_client.get(_base(ex, node) + "output/tree", **HTMX)
    viewer_client.get(_base(ex, node) + "input/tree", **HTMX)
    fetched = upstream_calls(simulator, before)

    before = len(simulator.calls)
    second_panel = viewer_client.get(_base(ex, node), **HTMX).content.decode()
    page = viewer_client.get(f"/executions/{ex.id}/?step={node}").content.decode()

    assert 'hx-trigger="load"' in first_panel  # not cached yet: loaded right after
    assert tree.status_code == 200 and "collection" in tree.content.decode()
    assert len(fetched) == 2 and all(f"/steps/{node}/" in c for c in fetched)
    row = StepPayload.objects.get(execution_id=ex.id, node_id=node, kind="output")
    assert row.size == len(json.dumps(row.body, ensure_ascii=False, separators=(",", ":")).encode())
    assert 'hx-trigger="load"' not in second_panel and "collection" in second_panel
    assert "collection" in page.split('id="step-panel"')[1]
    assert upstream_calls(simulator, before) == []


def test_a_running_executions_payloads_are_fetched_again(simulator, viewer_client):
    simulator.configure(run_min_seconds=30, run_max_seconds=30, run_status="success")
    wf = simulator.dataset().workflows[0]
    run = client_from_settings().run_workflow(wf.id, input={"note": "first"}, variables={})
    time.sleep(0.5)  # the trigger step is done within milliseconds
    url = f"/executions/{run.execution_id}/steps/trigger/input/tree"

    before = len(simulator.calls)
    one = viewer_client.get(url, **HTMX)
    two = viewer_client.get(url, **HTMX)

    assert one.status_code == two.status_code == 200
    inputs = [c for c in upstream_calls(simulator, before) if c.endswith("/steps/trigger/input")]
    assert len(inputs) == 2


def _downloaded(response) -> bytes:
    """A download's bytes, whether it was sent whole or streamed (big payloads)."""
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def test_the_download_is_the_masked_json_as_an_attachment(simulator, viewer_client):
    ex = successful(simulator)
    node = _resource_step(ex).node_id

    response = viewer_client.get(_base(ex, node) + "output.json")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"] == (
        f'attachment; filename="{ex.id[:8]}-{node}-output.json"'
    )
    assert json.loads(_downloaded(response)) == _expected_output(simulator, ex, node)


def test_a_subtree_fetched_by_path_is_exactly_that_subtree(simulator, viewer_client):
    ex = successful(simulator)
    node = _resource_step(ex).node_id
    expected = _expected_output(simulator, ex, node)
    path = "/collection/1"
    subtree = resolve(expected, ["collection", "1"])

    html = viewer_client.get(_base(ex, node) + f"output/tree?path={path}", **HTMX).content.decode()
    exact = viewer_client.get(_base(ex, node) + f"output.json?path={path}")

    assert json.loads(_downloaded(exact)) == subtree
    paths = _paths(html)
    assert all(p.startswith(f"{path}/") for p in paths)
    assert [p for p in paths if p.count("/") == 3] == [f"{path}/{k}" for k in subtree]
    assert "stepMessage" not in html


def test_a_search_lists_and_highlights_the_matching_paths(simulator, viewer_client):
    ex = successful(simulator)
    node = _resource_step(ex).node_id

    html = viewer_client.get(_base(ex, node) + "output/tree?q=stepmessage", **HTMX).content.decode()

    assert "match" in html
    assert "/<mark>stepMessage</mark>" in html


def test_long_arrays_show_100_items_and_then_100_more_by_offset(simulator, viewer_client):
    ds = simulator.dataset()
    ex_id, node, _ = ds.big_payloads[0]
    url = f"/executions/{ex_id}/steps/{node}/output/tree"

    first = viewer_client.get(url + "?path=/collection", **HTMX).content.decode()
    more = viewer_client.get(url + "?path=/collection&offset=100", **HTMX).content.decode()

    assert _paths(first) == [f"/collection/{i}" for i in range(100)]
    assert "offset=100" in first
    assert _paths(more) == [f"/collection/{i}" for i in range(100, 200)]


def test_the_first_view_of_a_10_mb_output_sends_under_300_kb(simulator, viewer_client):
    ds = simulator.dataset()
    ex_id, node, size = max(ds.big_payloads, key=lambda item: item[2])
    assert size >= 10_000_000
    base = f"/executions/{ex_id}/steps/{node}/"

    panel = viewer_client.get(base, **HTMX)
    trees = [viewer_client.get(base + f"{kind}/tree", **HTMX) for kind in ("input", "output")]
    sent = len(panel.content) + sum(len(t.content) for t in trees)
    output = trees[1].content.decode()

    assert all(r.status_code == 200 for r in (panel, *trees))
    assert sent <= 300 * 1024, sent
    assert "MB of JSON" in output and "collection: " in output
    assert (
        StepPayload.objects.get(execution_id=ex_id, node_id=node, kind="output").size > 10_000_000
    )
    # A later first view comes from the cache, inline in the panel, and stays small too.
    again = viewer_client.get(base, **HTMX)
    assert len(again.content) <= 300 * 1024
    item = viewer_client.get(base + "output.json?path=/collection/7")
    assert json.loads(_downloaded(item)) == resolve(
        services.mask_payload(json.loads(_raw_output(simulator, ex_id, node))), ["collection", "7"]
    )


def _raw_output(simulator, ex_id: str, node: str) -> str:
    from qflowui.simulator import payloads

    ds = simulator.dataset()
    ex = ds.execution(ex_id)
    step = next(s for s in ex.steps if s.node_id == node)
    return payloads.payload_text(ds, ex, step, "output", "Success")


def test_an_array_of_similar_objects_can_be_shown_as_a_table(simulator, viewer_client):
    ex = successful(simulator)
    node = _resource_step(ex).node_id

    html = viewer_client.get(
        _base(ex, node) + "output/tree?path=/collection&view=table", **HTMX
    ).content.decode()

    assert '<table class="jt-table">' in html
    assert "<th>#</th>" in html and "view=row" in html


def test_an_unknown_step_is_404_and_an_unreached_one_costs_no_call(simulator, viewer_client):
    ex = failed(simulator)
    ran = {s.node_id for s in ex.steps}
    unreached = next(
        c["id"]
        for c in simulator.dataset().workflow(ex.workflow_id).components
        if c["id"] not in ran
    )
    viewer_client.get(f"/executions/{ex.id}/")

    before = len(simulator.calls)
    missing = viewer_client.get(_base(ex, "node-00000000-nothing"))
    idle = viewer_client.get(_base(ex, unreached))
    idle_tree = viewer_client.get(_base(ex, unreached) + "output/tree", **HTMX)

    assert missing.status_code == 404
    assert idle.status_code == 200 and "was not reached" in idle.content.decode()
    assert "did not run" in idle_tree.content.decode()
    assert upstream_calls(simulator, before) == []


def test_a_payload_qflow_cannot_serve_gives_a_notice_not_an_error(simulator, viewer_client):
    ex = successful(simulator)
    node = _resource_step(ex).node_id
    simulator.inject("status", path=rf"/steps/{node}/output$", status=503, times=None)

    response = viewer_client.get(_base(ex, node) + "output/tree", **HTMX)

    assert response.status_code == 200
    assert "QFlow could not be reached" in response.content.decode()
    assert not StepPayload.objects.filter(execution_id=ex.id, node_id=node, kind="output").exists()


def test_a_bad_path_is_a_404_with_a_message(simulator, viewer_client):
    ex = successful(simulator)
    node = _resource_step(ex).node_id
    viewer_client.get(_base(ex, node) + "output/tree", **HTMX)

    page = viewer_client.get(_base(ex, node) + "output/tree?path=/nope/3")
    download = viewer_client.get(_base(ex, node) + "output.json?path=/nope")

    assert page.status_code == 404 and "No value at this path" in page.content.decode()
    assert download.status_code == 404
