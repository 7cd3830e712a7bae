"""Step payloads as stored: orjson's JSON text and a head for large ones; a cached first view
and a search that the text rules out never decode the payload; migration 0011 converts rows
stored as jsonb."""

from __future__ import annotations

import json
import random
import uuid

import orjson
import pytest
from django.core.cache import cache
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from qflowui.core import jsonio
from qflowui.executions import jsontree, payloads, services
from qflowui.mirror.fields import JsonTextField
from qflowui.mirror.models import StepPayload
from qflowui.simulator.payloads import big_inventory
from tests.test_execution_detail_support import successful

HTMX = {"HTTP_HX_REQUEST": "true"}


# --- the search's quick check: never a miss where the walk finds something -------------------


def _texts(value) -> list[str]:
    """The JSON text of `value` as the writers a stored payload may come from write it."""
    return [
        jsonio.dumps_text(value),  # orjson: what qflowui stores
        json.dumps(value),  # the stdlib, ASCII only (\\uXXXX): SQLite's JSONField before 0009
        json.dumps(value, ensure_ascii=False, indent=1),  # jsonb::text-like spacing
    ]


_WORDS = ["Name", "arn:aws:ec2", "ΣΊΣΥΦΟΣ", "İstanbul", "K", "a/b", "tab\there", 'q"uote', "x\\y"]


def _doc(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth > 3 or roll < 0.35:
        return rng.choice([None, True, False, 7, -1.5, 1e16, 3e-07, rng.choice(_WORDS)])
    if roll < 0.45:  # JSON held in a string, written with escapes a producer may use
        inner = json.dumps(_doc(rng, depth + 1), ensure_ascii=rng.random() < 0.5)
        return inner.replace("/", "\\/") if rng.random() < 0.3 else inner
    if roll < 0.75:
        return {rng.choice(_WORDS) + str(i): _doc(rng, depth + 1) for i in range(rng.randint(0, 4))}
    return [_doc(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def _needles(rng: random.Random, text: str) -> list[str]:
    out = [
        "null",
        "true",
        "e+16",
        "1e",
        "-1.5",
        "\u03c3",
        "\u03c2",
        "i\u0307",
        "k",
        "/",
        "no-such-text",
    ]
    for _ in range(30):
        start = rng.randrange(len(text))
        out.append(text[start : start + rng.randint(1, 6)])
    return out


@pytest.mark.parametrize("seed", range(150))
def test_the_quick_check_never_rules_out_a_search_that_finds_something(seed):
    rng = random.Random(seed)
    value = jsonio.loads(jsonio.dumps(_doc(rng)))
    plain = json.dumps(value, ensure_ascii=False)
    for needle in _needles(rng, plain) + [w.lower() for w in _WORDS] + _WORDS:
        found, _ = jsontree.search(value, needle)
        if found:
            for text in _texts(value):
                assert jsontree.may_match(text, needle), (value, needle, text)
                assert jsontree.may_match(text.lower(), needle, lowered=True), (value, needle)


def test_the_quick_check_rules_out_text_that_is_not_there():
    text = jsonio.dumps_text({"collection": [{"name": "web-1", "state": "NON_COMPLIANT"}]})
    assert not jsontree.may_match(text, "no-such-text")
    assert jsontree.may_match(text, "non_compliant")
    assert jsontree.may_match(text, "12")  # could be a number's text: the walk decides


# --- stored form, first views and searches ------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_caches():
    cache.clear()
    services.memo_clear()


def _big_payload(execution, node_id: str) -> tuple[StepPayload, dict]:
    raw = orjson.loads(big_inventory("stored", "123456789012", "eu-west-1", 1, 1_500_000))
    raw["collection"][3]["apiPassword"] = "hunter2-not-masked-yet"
    payloads.store_payload(execution, node_id, "output", raw)
    services.memo_clear()
    return StepPayload.objects.get(execution=execution, node_id=node_id, kind="output"), raw


@pytest.mark.django_db(transaction=True)
def test_a_large_payload_is_stored_masked_as_orjson_text_with_its_head(simulator):
    ex = successful(simulator)
    node = ex.steps[0].node_id
    row, raw = _big_payload(services.execution_load(ex.id).execution, node)

    text = StepPayload.objects.values_list(JsonTextField.raw("body"), flat=True).get(pk=row.pk)
    assert "hunter2-not-masked-yet" not in text  # masked before it is stored
    assert text == jsonio.dumps_text(services.mask_payload(raw))
    assert row.size == len(text.encode())
    assert jsontree.head_loads(row.head) is not None


def _no_decoding(monkeypatch):
    def refuse(row):
        raise AssertionError("the payload was decoded")

    monkeypatch.setattr(payloads, "_body", refuse)


@pytest.mark.django_db(transaction=True)
def test_a_cached_first_view_and_a_ruled_out_search_do_not_decode_the_payload(
    simulator, viewer_client, monkeypatch
):
    ex = successful(simulator)
    node = ex.steps[0].node_id
    row, _ = _big_payload(services.execution_load(ex.id).execution, node)
    url = f"/executions/{ex.id}/steps/{node}/output/tree"
    expected = viewer_client.get(url + "?q=collection", **HTMX).content.decode()  # decodes
    whole = jsontree.render_tree(row.body, size=row.size, urls=_urls(ex.id, node))
    services.memo_clear()
    _no_decoding(monkeypatch)

    first = viewer_client.get(url, **HTMX).content.decode()
    missed = viewer_client.get(url + "?q=no-such-text", **HTMX).content.decode()

    assert str(whole) in first
    assert "No key or value matches" in missed
    monkeypatch.undo()
    assert viewer_client.get(url + "?q=collection", **HTMX).content.decode() == expected


def _urls(execution_id, node):
    from qflowui.executions.presentation import tree_urls

    return tree_urls(execution_id, node, "output")


@pytest.mark.django_db(transaction=True)
def test_a_large_payload_without_a_head_gets_one_at_its_first_view(simulator, viewer_client):
    ex = successful(simulator)
    node = ex.steps[0].node_id
    row, _ = _big_payload(services.execution_load(ex.id).execution, node)
    StepPayload.objects.filter(pk=row.pk).update(head={"v": 0})  # another version's head

    response = viewer_client.get(f"/executions/{ex.id}/steps/{node}/output/tree", **HTMX)

    assert response.status_code == 200 and "MB of JSON" in response.content.decode()
    assert jsontree.head_loads(StepPayload.objects.get(pk=row.pk).head) is not None


# --- migration 0011 ----------------------------------------------------------------------------

BEFORE = [("mirror", "0010_started_index_covers_rollup_dims")]
AFTER = [("mirror", "0011_payload_text_head")]


@pytest.mark.django_db(transaction=True)
def test_migration_0011_turns_stored_jsonb_into_orjson_text_and_heads():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        old = executor.loader.project_state(BEFORE).apps
        now = timezone.now()
        workflow = old.get_model("mirror", "Workflow").objects.create(id=uuid.uuid4(), name="W")
        execution = old.get_model("mirror", "Execution").objects.create(
            id=uuid.uuid4(),
            workflow=workflow,
            status="Success",
            status_class="success",
            started_at=now,
            last_synced_at=now,
        )
        big = orjson.loads(big_inventory("migrate", "1", "us-east-1", 1, 1_200_000))
        small = {"naïve": ["é", 1.5, None, {"json": '{"a": "\\u0041"}'}]}
        rows = old.get_model("mirror", "StepPayload").objects
        for kind, body in (("input", small), ("output", big)):
            size = len(jsonio.dumps(body))
            rows.create(
                execution=execution, node_id="n", kind=kind, body=body, size=size, fetched_at=now
            )
        rows.create(execution=execution, node_id="m", kind="input", body=None, fetched_at=now)

        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(AFTER)

        stored = {
            (p.node_id, p.kind): p
            for p in StepPayload.objects.annotate(text=JsonTextField.raw("body"))
        }
        assert stored["n", "input"].body == small
        assert stored["n", "input"].text == jsonio.dumps_text(small)
        assert stored["n", "input"].head is None
        # jsonb kept the keys in its own order: the text keeps that order, written by orjson.
        assert stored["n", "output"].body == big
        assert stored["n", "output"].text == jsonio.dumps_text(stored["n", "output"].body)
        assert jsontree.head_loads(stored["n", "output"].head) is not None
        assert stored["m", "input"].body is None
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
