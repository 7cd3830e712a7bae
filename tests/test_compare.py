"""`/executions/compare/?a=&b=` (issue 12): two executions side by side, their steps aligned,
a node's payload diff (lazy, bounded), the picker, and the execution page's compare buttons."""

from __future__ import annotations

import html
import re
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from qflowui.executions import compare, jsontree, services
from qflowui.executions.payloads import store_payload
from qflowui.mirror import status as st
from qflowui.mirror.models import Step
from qflowui.qflow import client_from_settings
from tests.test_execution_detail_support import finished
from tests.test_executions_list import make_execution, make_workflow

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _fresh_caches():
    cache.clear()
    services.memo_clear()


def _text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


def _attr(response, name: str) -> list[str]:
    return [html.unescape(v) for v in re.findall(rf'{name}="([^"]*)"', response.content.decode())]


def _url(a: Any, b: Any = None, **extra: Any) -> str:
    from django.urls import reverse

    query = {"a": str(a), **({"b": str(b)} if b else {}), **extra}
    return reverse("executions:compare", query=query)


def _node_url(a: Any, b: Any, node: str, kind: str, **extra: Any) -> str:
    from django.urls import reverse

    query = {"a": str(a), "b": str(b), "node": node, "kind": kind, **extra}
    return reverse("executions:compare_node", query=query)


# --- the seed-like workflow in the simulator, over real HTTP --------------------------------------


def _seed_pair(simulator):
    """A failed and a successful execution of "Stop publicly exposed EC2 instances" (the seed
    workflow): same connector and region, started by an event and by the schedule."""
    key = simulator.dataset().workflow_by_key("ec2_public").id
    bad = finished(
        simulator,
        status="Failed",
        where=lambda ex: (
            ex.workflow_id == key and ex.source == "EVENT" and ex.steps[-1].node_type == "action"
        ),
    )
    good = finished(
        simulator,
        status="Success",
        where=lambda ex: (
            ex.workflow_id == key
            and ex.source == "SCHEDULE"
            and ex.connector.id == bad.connector.id
            and ex.settings.get("region") == bad.settings.get("region")
            and {s.node_id for s in bad.steps} <= {s.node_id for s in ex.steps}
        ),
    )
    return bad, good


@pytest.mark.django_db(transaction=True)
def test_the_failed_and_successful_seed_executions_part_ways_at_the_failing_action(
    simulator, viewer_client
):
    bad, good = _seed_pair(simulator)
    failing = bad.steps[-1]

    response = viewer_client.get(_url(bad.id, good.id))
    text = _text(response)

    assert response.status_code == 200
    assert _attr(response, "data-diverge") == [failing.node_id]
    assert "They part ways at" in text
    # Where they part ways comes first, then the facts, then the aligned steps.
    assert text.index("They part ways") < text.index("Facts") < text.index("aligned by node")
    # Every node of either execution, each with its status in a and in b.
    rows = re.findall(
        r'data-node-id="([^"]+)" data-a-status="([^"]*)" data-b-status="([^"]*)"',
        response.content.decode(),
    )
    a_status = {s.node_id: s.status for s in bad.steps}
    b_status = {s.node_id: s.status for s in good.steps}
    assert {node for node, _, _ in rows} == set(a_status) | set(b_status)
    for node, left, right in rows:
        assert left == a_status.get(node, "") and right == b_status.get(node, "")
    # Nodes that ran only in the success are named as such.
    only_b = [s.node_id for s in good.steps if s.node_id not in a_status]
    assert only_b and "Ran only in b" in text
    assert "did not run" in text
    assert "Failed" in text and "Success" in text
    # The first failing node's error (masked) is shown where they part ways.
    assert failing.error.split("\n")[0][:40] in text


@pytest.mark.django_db(transaction=True)
def test_the_input_diff_shows_the_trigger_keys_that_changed_key_by_key(simulator, viewer_client):
    bad, good = _seed_pair(simulator)
    page = viewer_client.get(_url(bad.id, good.id))
    (input_url,) = [u for u in _attr(page, "hx-get") if "view=keys" in u]

    fragment = viewer_client.get(input_url, **HTMX)
    body = fragment.content.decode()
    changes = dict(re.findall(r'data-key="([^"]+)" data-change="([^"]+)"', body))

    assert fragment.status_code == 200
    assert {k for k, v in changes.items() if v != "same"} == {"triggerType", "source"}
    row = re.search(r'data-key="triggerType".*?</tr>', body, re.S).group(0)
    assert "Event" in row and "CronTrigger" in row
    # The trigger's own execution id always differs: it is left out, not shown as a change.
    assert "executionId" not in changes
    # Unchanged keys are there, collapsed.
    assert changes.get("globalVariables.region") == "same"
    assert "the same in a and b" in _text(fragment)


def _reference_diff(a: Any, b: Any, path: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """A plain recursive diff (small payloads only) to check json_diff against."""
    if compare._same(a, b):
        return []
    left, right = compare._container(a), compare._container(b)
    if isinstance(left, dict) and isinstance(right, dict):
        out = []
        for key in left:
            if key in right:
                out += _reference_diff(left[key], right[key], (*path, key))
            else:
                out.append((jsontree.pointer_join((*path, key)), "removed"))
        out += [(jsontree.pointer_join((*path, k)), "added") for k in right if k not in left]
        return out
    if isinstance(left, list) and isinstance(right, list):
        out = []
        for i in range(min(len(left), len(right))):
            out += _reference_diff(left[i], right[i], (*path, str(i)))
        out += [
            (jsontree.pointer_join((*path, str(i))), "removed")
            for i in range(len(right), len(left))
        ]
        out += [
            (jsontree.pointer_join((*path, str(i))), "added") for i in range(len(left), len(right))
        ]
        return out
    return [(jsontree.pointer_join(path), "changed")]


@pytest.mark.django_db(transaction=True)
def test_a_nodes_output_diff_lists_exactly_the_changed_paths_in_order(simulator, viewer_client):
    bad, good = _seed_pair(simulator)
    node = next(s.node_id for s in bad.steps if s.node_type == "resource")
    api = client_from_settings()
    expected = _reference_diff(
        services.mask_payload(api.get_step_output(bad.id, node)),
        services.mask_payload(api.get_step_output(good.id, node)),
    )
    assert expected

    fragment = viewer_client.get(_node_url(bad.id, good.id, node, "output"), **HTMX)
    body = fragment.content.decode()
    listed = [
        (html.unescape(p), c)
        for p, c in re.findall(r'data-path="([^"]*)" data-change="([^"]+)"', body)
    ]

    assert fragment.status_code == 200
    assert listed == expected[: compare.MAX_CHANGES]
    assert f'data-diff-count="{len(expected)}"' in body
    # Without htmx the same URL is a page of its own (the link works as a link).
    page = viewer_client.get(_node_url(bad.id, good.id, node, "output"))
    assert page.status_code == 200 and "<html" in page.content.decode()
    assert "Compare" in _text(page) and listed[0][0] in html.unescape(page.content.decode())


@pytest.mark.django_db(transaction=True)
def test_a_10_mb_output_on_one_side_gives_a_small_answer_with_the_changes_first(
    simulator, viewer_client
):
    ds = simulator.dataset()
    big_id, node, size = max(ds.big_payloads, key=lambda item: item[2])
    assert size >= 10_000_000
    big = ds.execution(big_id)
    other = finished(
        simulator,
        status="Success",
        where=lambda ex: (
            ex.workflow_id == big.workflow_id
            and ex.id != big_id
            and not ex.big
            and any(s.node_id == node for s in ex.steps)
        ),
    )

    response = viewer_client.get(_node_url(big_id, other.id, node, "output"), **HTMX)
    body = response.content.decode()

    assert response.status_code == 200
    assert len(response.content) <= 300 * 1024, len(response.content)
    paths = re.findall(r'data-path="([^"]*)" data-change="', body)
    assert 0 < len(paths) <= compare.MAX_CHANGES
    more = re.search(r'data-more-changes="(\d+)"', body)
    assert more and int(more.group(1)) > 1000  # the big side's extra items, counted
    # Changed paths first, the unchanged subtrees after them, collapsed.
    assert body.index("data-path=") < body.index("unchanged subtree")
    assert "<details" in body[body.index("unchanged subtree") - 200 :]


@pytest.mark.django_db(transaction=True)
def test_a_node_diff_polls_while_a_task_fetches_and_stops_with_the_diff(
    simulator, viewer_client, monkeypatch
):
    bad, good = _seed_pair(simulator)
    node = next(s.node_id for s in bad.steps if s.node_type == "filter")
    # A worker is alive and takes the fetch: the fragment shows progress and polls.
    cache.set(services.worker_alive_key(services.default_queue()), 1, 30)
    enqueued: list[tuple] = []
    monkeypatch.setattr(services, "_enqueue_fetch", lambda *args: enqueued.append(args) or True)

    first = viewer_client.get(_node_url(bad.id, good.id, node, "input"), **HTMX)
    body = first.content.decode()

    assert first.status_code == 200
    assert 'data-fetching="input"' in body and "Fetching the input" in body
    assert {(e, n) for e, n, _ in enqueued} == {(bad.id, node), (good.id, node)}
    (poll,) = [u for u in _attr(first, "hx-get") if "poll=" in u]
    # The task does its job (here, its body run directly), then the poll gets the diff.
    for execution_id in (bad.id, good.id):
        assert services.payload_fetch(execution_id, node, "input") == "done"
    done = viewer_client.get(poll, **HTMX)
    assert done.status_code == 286  # htmx: stop polling
    assert "data-fetching" not in done.content.decode()
    assert "data-diff-count" in done.content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_compare_page_costs_no_upstream_call_once_both_are_cached(simulator, viewer_client):
    bad, good = _seed_pair(simulator)
    assert viewer_client.get(_url(bad.id, good.id)).status_code == 200
    since = len(simulator.calls)
    again = viewer_client.get(_url(bad.id, good.id))
    assert again.status_code == 200
    assert [c for c in simulator.calls[since:] if c.path != "/auth/oidc"] == []


# --- bad input: a clear message, never a 500 ------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?a=not-an-id&b=also-bad", "is not an execution id"),
        ("?b=0e71f117-648f-4ad2-a3a9-8f1b857a1b70", "Give two executions"),
    ],
)
def test_ids_that_are_not_ids_get_a_message_on_the_page(viewer_client, query, message):
    response = viewer_client.get(f"/executions/compare/{query}")
    assert response.status_code == 400
    assert message in _text(response)
    assert 'name="a"' in response.content.decode()  # the form to try again


@pytest.mark.django_db
def test_comparing_an_execution_with_itself_says_so(viewer_client):
    ex = make_execution(make_workflow())
    response = viewer_client.get(_url(ex.id, ex.id))
    assert response.status_code == 400
    assert "a and b are the same execution" in _text(response)


@pytest.mark.django_db(transaction=True)
def test_an_unknown_execution_is_named(simulator, viewer_client):
    ex = make_execution(make_workflow())
    Step.objects.create(
        execution=ex, node_id="trigger", status="Success", status_class=st.SUCCESS,
        last_synced_at=timezone.now(),
    )  # fmt: skip
    ex.steps_synced_at = timezone.now()
    ex.save()
    missing = uuid.uuid4()
    response = viewer_client.get(_url(ex.id, missing))
    assert response.status_code == 404
    assert f"Execution b ({missing}) is unknown" in _text(response)


def _with_steps(ex, steps: list[tuple[str, str, int]]):
    for node, status, order in steps:
        Step.objects.create(
            execution=ex,
            node_id=node,
            status=status,
            status_class=st.status_class(status),
            event_order=order,
            started_at=ex.started_at + timedelta(seconds=order),
            ended_at=ex.started_at + timedelta(seconds=order, milliseconds=500 * order),
            error="AccessDenied: password=hunter2hunter2 rejected" if status == "Failed" else "",
            last_synced_at=timezone.now(),
        )
    ex.steps_synced_at = timezone.now()
    ex.save()
    return ex


@pytest.mark.django_db
def test_executions_of_two_workflows_are_compared_with_a_warning(viewer_client):
    a = _with_steps(make_execution(make_workflow("Stop EC2")), [("trigger", "Success", 1)])
    b = _with_steps(make_execution(make_workflow("Rotate keys")), [("trigger", "Success", 1)])
    response = viewer_client.get(_url(a.id, b.id))
    assert response.status_code == 200
    assert "different workflows" in _text(response)
    assert "Same steps, same statuses" in _text(response)


@pytest.mark.django_db
def test_variables_are_diffed_key_by_key_and_masked(viewer_client):
    wf = make_workflow()
    a = _with_steps(make_execution(wf, status="Failed"), [("trigger", "Success", 1)])
    b = _with_steps(make_execution(wf, region="eu-west-1"), [("trigger", "Success", 1)])
    a.variables = ["region=us-east-1", "depthCount=2", "dbPassword=hunter2hunter2", "old=1"]
    b.variables = ["region=eu-west-1", "depthCount=2", "dbPassword=s3cr3t-other", "new=x"]
    a.save()
    b.save()
    response = viewer_client.get(_url(a.id, b.id))
    body = response.content.decode()
    changes = dict(re.findall(r'data-key="([^"]+)" data-change="([^"]+)"', body))

    assert changes == {
        "region": "changed",
        "old": "removed",
        "new": "added",
        "depthCount": "same",
        "dbPassword": "same",  # both masked: a secret's value is never compared in clear
    }
    assert "hunter2" not in body and "s3cr3t" not in body
    # Changed keys come before the unchanged ones.
    assert body.index('data-key="region"') < body.index('data-key="depthCount"')


@pytest.mark.django_db
def test_payload_diffs_show_only_masked_values(viewer_client):
    wf = make_workflow()
    steps = [("trigger", "Success", 1), ("node-aaaa0001-action", "Failed", 2)]
    a = _with_steps(make_execution(wf, status="Failed"), steps)
    b = _with_steps(
        make_execution(wf), [("trigger", "Success", 1), ("node-aaaa0001-action", "Success", 2)]
    )
    store_payload(
        a,
        "node-aaaa0001-action",
        "output",
        {"token": "ghp_" + "a" * 36, "n": 1, "note": "<script>x</script>"},
    )
    store_payload(
        b, "node-aaaa0001-action", "output", {"token": "ghp_" + "b" * 36, "n": 2, "note": "ok"}
    )

    page = viewer_client.get(_url(a.id, b.id))
    fragment = viewer_client.get(_node_url(a.id, b.id, "node-aaaa0001-action", "output"), **HTMX)
    body = page.content.decode() + fragment.content.decode()

    assert "hunter2" not in body and "ghp_" not in body
    assert "<script>x</script>" not in body and "&lt;script&gt;" in body
    assert dict(re.findall(r'data-path="([^"]*)" data-change="([^"]+)"', body)) == {
        "/n": "changed",
        "/note": "changed",
    }
    assert _attr(page, "data-diverge") == ["node-aaaa0001-action"]


# --- the picker and the execution page's buttons --------------------------------------------------


@pytest.mark.django_db
def test_the_picker_lists_recent_executions_of_the_same_workflow(viewer_client):
    wf, other = make_workflow(), make_workflow("Another workflow")
    a = make_execution(wf, status="Failed", ago=timedelta(hours=1))
    Step.objects.create(
        execution=a, node_id="trigger", status="Success", status_class=st.SUCCESS,
        last_synced_at=timezone.now(),
    )  # fmt: skip
    a.steps_synced_at = timezone.now()
    a.save()
    siblings = [make_execution(wf, ago=timedelta(hours=h)) for h in (2, 3)]
    stranger = make_execution(other)

    response = viewer_client.get(_url(a.id))
    listed = _attr(response, "data-execution-id")

    assert response.status_code == 200
    assert listed == [str(e.id) for e in siblings]
    assert str(stranger.id) not in listed and str(a.id) not in listed
    assert _url(a.id, siblings[0].id).replace("&", "&amp;") in response.content.decode()
    assert 'name="b"' in response.content.decode()  # paste an id


def _failed_with_connector(wf, connector: str, region: str, **kw):
    ex = make_execution(wf, status="Failed", region=region, **kw)
    ex.variables = [f"connectorId={connector}", f"region={region}"]
    ex.save()
    return ex


@pytest.mark.django_db
def test_a_failed_execution_offers_the_last_success_with_the_same_connector_and_region(
    viewer_client,
):
    wf = make_workflow()
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    failed = _with_steps(
        _failed_with_connector(wf, mine, "us-east-1", ago=timedelta(hours=5)),
        [("trigger", "Success", 1)],
    )

    def success(connector: str, region: str, hours: float):
        ex = make_execution(wf, region=region, ago=timedelta(hours=hours))
        ex.variables = [f"connectorId={connector}"]
        ex.save()
        return ex

    success(theirs, "us-east-1", 5.5)  # latest before, but another connector
    wanted = success(mine, "us-east-1", 9)
    success(mine, "us-east-1", 12)  # same, but older
    success(mine, "us-east-1", 1)  # same, but after the failure

    page = viewer_client.get(f"/executions/{failed.id}/")
    links = dict(re.findall(r'href="([^"]+)" data-compare="([^"]+)"', page.content.decode()))
    by_kind = {kind: html.unescape(url) for url, kind in links.items()}

    assert by_kind["last-success"] == _url(failed.id, wanted.id)
    assert by_kind["pick"] == _url(failed.id)
    assert "Compare with the last success" in _text(page)


@pytest.mark.django_db
def test_without_any_success_the_page_says_so_and_a_success_offers_only_the_picker(
    viewer_client,
):
    wf = make_workflow()
    failed = _with_steps(make_execution(wf, status="Failed"), [("trigger", "Success", 1)])
    page = viewer_client.get(f"/executions/{failed.id}/")
    assert "No success to compare with" in _text(page)

    ok = _with_steps(make_execution(wf), [("trigger", "Success", 1)])
    page = viewer_client.get(f"/executions/{ok.id}/")
    assert 'data-compare="last-success"' not in page.content.decode()
    assert 'data-compare="no-success"' not in page.content.decode()
    assert "Compare with…" in _text(page)


@pytest.mark.django_db
def test_compare_pages_need_a_login_and_data_access(client, django_user_model):
    assert client.get("/executions/compare/").status_code == 302
    assert client.get("/executions/compare/node/").status_code == 302
    nobody = django_user_model.objects.create_user(username="no.group", password="x" * 20)
    client.force_login(nobody)
    assert client.get("/executions/compare/").status_code == 403
    assert client.get("/executions/compare/node/?a=x").status_code == 403


# --- the diff itself ------------------------------------------------------------------------------


def test_json_diff_lists_changes_in_document_order_and_collapses_equal_subtrees():
    a = {"x": 1, "same": {"deep": [1, 2, 3]}, "list": [1, 2, 3], "gone": True, "t": True}
    b = {"x": 2, "same": {"deep": [1, 2, 3]}, "list": [1, 5], "t": 1, "new": None}
    diff = compare.json_diff(a, b)
    assert [(c.path, c.change) for c in diff.changes] == [
        ("/x", "changed"),
        ("/list/1", "changed"),
        ("/list/2", "removed"),
        ("/gone", "removed"),
        ("/t", "changed"),  # true is not 1
        ("/new", "added"),
    ]
    assert [(u.path, u.kind) for u in diff.unchanged] == [
        ("/same", "object, 1 key"),
        ("/list/0", "number"),
    ]


def test_json_diff_walks_json_held_in_strings():
    diff = compare.json_diff({"body": '{"a": 1, "b": 2}'}, {"body": '{"a": 1, "b": 3}'})
    assert [(c.path, c.a, c.b) for c in diff.changes] == [("/body/b", "2", "3")]


def test_json_diff_of_a_huge_payload_is_bounded_and_quick():
    big = {"collection": [{"id": f"i-{n:08x}", "tags": {"n": n}} for n in range(200_000)]}
    small = {"collection": [{"id": "i-00000000", "tags": {"n": 0}}, {"id": "x"}]}
    started = time.perf_counter()
    diff = compare.json_diff(big, small)
    elapsed = time.perf_counter() - started
    assert len(diff.changes) == compare.MAX_CHANGES
    assert diff.total_changes == 2 + 199_998  # item 1's two changes, then each extra item
    assert elapsed < 2  # generous: it looks at ~200 items, not 200,000
    # Two big payloads differing everywhere stop after MAX_VISITS values, and say so.
    other = {"collection": [{"id": f"j-{n:08x}", "tags": {"n": -n}} for n in range(200_000)]}
    diff = compare.json_diff(big, other)
    assert diff.stopped and len(diff.changes) == compare.MAX_CHANGES


def test_json_diff_and_previews_never_recurse_on_depth():
    deep_a: Any = "leaf-a"
    deep_b: Any = "leaf-b"
    for _ in range(450):  # under jsonio's 512 levels, past what recursion would like
        deep_a, deep_b = {"k": [deep_a]}, {"k": [deep_b]}
    diff = compare.json_diff(deep_a, deep_b)
    assert len(diff.changes) == 1 and diff.changes[0].path.count("/") == 900
    assert compare.preview(deep_a).endswith("…")


def test_steps_align_in_run_order_and_find_where_they_part_ways():
    def side(status: str, order: int) -> compare.StepSide:
        return compare.StepSide(status, st.status_class(status), order, 1000 * order)

    a = {"trigger": side("Success", 1), "list": side("Success", 2), "stop": side("Failed", 3)}
    b = {
        "trigger": side("Success", 1),
        "list": side("Success", 2),
        "notify": side("Success", 3),
        "stop": side("Success", 4),
    }
    rows = compare.steps_align(a, b, {"stop": ("Stop instances", "action")})
    assert [r.node_id for r in rows] == ["trigger", "list", "notify", "stop"]
    assert [r.only_in for r in rows] == ["", "", "b", ""]
    assert compare.first_divergence(rows).node_id == "notify"
    assert rows[3].name == "Stop instances" and rows[3].delta_ms == 1000


def test_the_last_success_prefers_same_connector_and_region_then_before_then_nearest():
    now = timezone.now()

    def cand(name: str, connector: str, region: str, hours: float) -> compare.Candidate:
        return compare.Candidate(name, now + timedelta(hours=hours), connector, region)

    pick = compare.last_success_pick
    items = [
        cand("other", "c2", "r1", -1),
        cand("same-old", "c1", "r1", -9),
        cand("after", "c1", "r1", 2),
    ]
    assert pick(now, "c1", "r1", items)[0].execution_id == "same-old"
    assert pick(now, "c1", "r1", items[2:])[0].execution_id == "after"
    assert pick(now, "c9", "r9", items)[0].execution_id == "other"
    assert pick(now, "c1", "r1", []) is None
    assert compare.connector_of(["connectorId=ABC"], {}) == "abc"
    assert compare.connector_of([], {"accounts": ["@XyZ"]}) == "xyz"
