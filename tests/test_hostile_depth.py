"""Hostile or broken upstream data never breaks a page: JSON nested 10,000 levels deep,
payload answers that are not JSON, and texts of megabytes (issue 9).

The depth policy (qflowui/core/jsonio.py): 512 levels of objects and arrays. A step payload
nested deeper is refused with a clear notice and never stored; a record (execution, step,
workflow) nested deeper is kept with the deeper part replaced by a marker; anything up to
512 levels works end to end. A fake QFlow on a loopback server sends the hostile answers
over real HTTP; every page, fragment, download and export must answer below 500.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from werkzeug import Request, Response

from qflowui.core import jsonio
from qflowui.executions import services
from qflowui.mirror.models import Execution, Step, StepPayload
from qflowui.qflow.errors import QflowBadResponse
from qflowui.qflow.parse import parse_payload, parse_payload_text, parse_step
from tests.test_execution_detail_support import (
    EXECUTION_ID,
    FakeQflow,
    component,
    serve_fake,
    step,
)

pytestmark = pytest.mark.django_db(transaction=True)

DEEP = 10_000
TOO_DEEP = "nested deeper than 512 levels"
HTMX = {"HTTP_HX_REQUEST": "true"}
BASE = f"/executions/{EXECUTION_ID}/"


def deep_array(levels: int, inner: str = "1") -> str:
    return "[" * levels + inner + "]" * levels


def deep_object(levels: int, inner: str = "1") -> str:
    return '{"a":' * levels + inner + "}" * levels


def raw_ref(name: str) -> str:
    """A placeholder in a record, replaced in the answer by the raw JSON text `name`."""
    return f"@@raw:{name}@@"


@dataclass
class RawFake(FakeQflow):
    """FakeQflow whose answers may hold JSON too deep for json.dumps, or no JSON at all."""

    raw: dict[str, str] = field(default_factory=dict)  # raw_ref name -> JSON text
    bodies: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)

    def handler(self, request: Request) -> Response:
        match = re.fullmatch(r".*/steps/(.+)/(input|output)", request.path)
        if match and match.groups() in self.bodies:
            self.calls.append(f"{request.method} {request.path}")
            body, content_type = self.bodies[match.groups()]
            return Response(body, status=200, content_type=content_type)
        response = super().handler(request)
        text = response.get_data(as_text=True)
        for name, value in self.raw.items():
            text = text.replace(json.dumps(raw_ref(name)), value)
        response.set_data(text)
        return response


def body_of(response) -> str:
    return response.getvalue().decode()


def get(client, url: str, **headers: str):
    response = client.get(url, **headers)
    assert response.status_code < 500, (url, response.status_code)
    return response


def payload_urls(node: str) -> dict[str, tuple[str, dict[str, str]]]:
    panel = f"{BASE}steps/{quote(node, safe='')}/"
    return {
        "page with panel": (f"{BASE}?step={quote(node, safe='')}", {}),
        "panel": (panel, HTMX),
        "panel page": (panel, {}),
        "input tree": (f"{panel}input/tree", HTMX),
        "output tree": (f"{panel}output/tree", HTMX),
        "output tree page": (f"{panel}output/tree", {}),
        "subtree": (f"{panel}output/tree?path=/0", HTMX),
        "subtree page": (f"{panel}output/tree?path=/0/0", {}),
        "more": (f"{panel}output/tree?path=&offset=100", HTMX),
        "whole string": (f"{panel}output/tree?path=/0&full=1", HTMX),
        "search": (f"{panel}output/tree?q=a", HTMX),
        "search page": (f"{panel}output/tree?q=1", {}),
        "table": (f"{panel}output/tree?path=&view=table", HTMX),
        "row": (f"{panel}output/tree?path=&view=row", HTMX),
        "input download": (f"{panel}input.json", {}),
        "output download": (f"{panel}output.json", {}),
        "path download": (f"{panel}output.json?path=/0", {}),
        "error": (f"{panel}error.txt", {}),
    }


# --- 10,000 levels ------------------------------------------------------------------------

PAYLOAD, RECORD, TEXT = "node-deep-payload", "node-deep-record", "node-deep-text"


@pytest.fixture
def deep(httpserver, settings):
    services.memo_clear()
    fake = RawFake(
        components=[
            component("trigger", "Trigger", "trigger", PAYLOAD),
            component(PAYLOAD, "Deep payload", "resource", RECORD),
            component(RECORD, "Deep record", "action", TEXT),
            component(TEXT, "Deep error text", "action"),
        ],
        steps=[
            step("trigger", "trigger", "Success", 1),
            step(PAYLOAD, "resource", "Success", 2),
            step(
                RECORD,
                "action",
                "Failed",
                3,
                error=raw_ref("error_object"),
                details={"trace": raw_ref("trace")},
            ),
            # An error text that is itself JSON nested 10,000 levels (a string, 20 KB).
            step(TEXT, "action", "Failed", 4, error=deep_array(DEEP)),
        ],
        inputs={
            # parseJson=false's form: a JSON string holding the (too deep) JSON text.
            PAYLOAD: deep_object(DEEP),
            "trigger": {"fine": True},
        },
        outputs={"trigger": {"fine": True}},
        execution={"extra": raw_ref("execution"), "variables": [raw_ref("variable")]},
        raw={
            "error_object": deep_object(DEEP, '"the error"'),
            "trace": deep_array(DEEP),
            "execution": deep_object(DEEP),
            "variable": deep_array(DEEP, '"v"'),
        },
        bodies={(PAYLOAD, "output"): (deep_array(DEEP).encode(), "application/json")},
    )
    return serve_fake(httpserver, settings, fake)


def test_no_page_fragment_download_or_export_answers_500(deep, viewer_client):
    urls = {
        "page": (BASE, {}),
        "live": (BASE, {**HTMX, "HTTP_HX_TARGET": "live"}),
        "export": (f"{BASE}export.json", {}),
    }
    for node in ("trigger", PAYLOAD, RECORD, TEXT):
        urls.update({f"{node} {name}": spec for name, spec in payload_urls(node).items()})

    answers = {name: get(viewer_client, url, **headers) for name, (url, headers) in urls.items()}

    assert answers["page"].status_code == 200
    assert answers["export"].status_code == 200
    json.loads(body_of(answers["export"]))  # a complete JSON document


def test_a_payload_nested_10000_levels_is_refused_with_a_clear_message_and_not_stored(
    deep, viewer_client
):
    panel = f"{BASE}steps/{PAYLOAD}/"

    first = body_of(get(viewer_client, f"{panel}output/tree", **HTMX))
    as_string = body_of(get(viewer_client, f"{panel}input/tree", **HTMX))

    assert TOO_DEEP in first and TOO_DEEP in as_string
    assert not StepPayload.objects.filter(node_id=PAYLOAD).exists()
    # Asked again (also once the remembered failure is gone): the same message, still no row.
    assert TOO_DEEP in body_of(get(viewer_client, f"{panel}output/tree", **HTMX))
    from django.core.cache import cache

    cache.clear()
    again = body_of(get(viewer_client, f"{panel}output/tree", **HTMX))
    assert TOO_DEEP in again
    assert not StepPayload.objects.filter(node_id=PAYLOAD).exists()
    for url in (f"{panel}output.json", f"{panel}output/tree?q=x", f"{panel}output/tree?path=/0"):
        response = get(viewer_client, url)
        assert response.status_code == 404 and TOO_DEEP in body_of(response), url
        assert TOO_DEEP in body_of(get(viewer_client, url, **HTMX))
    export = json.loads(body_of(get(viewer_client, f"{BASE}export.json")))
    deep_step = next(s for s in export["steps"] if s["nodeId"] == PAYLOAD)
    assert deep_step["output"] is None and deep_step["input"] is None
    assert any(PAYLOAD in note and TOO_DEEP in note for note in export["notes"])
    assert not StepPayload.objects.filter(node_id=PAYLOAD).exists()


def test_records_nested_10000_levels_are_kept_with_the_deeper_part_left_out(deep, viewer_client):
    page = body_of(get(viewer_client, BASE))
    panel = body_of(get(viewer_client, f"{BASE}steps/{RECORD}/", **HTMX))

    execution = Execution.objects.get(pk=EXECUTION_ID)
    record = Step.objects.get(execution=execution, node_id=RECORD)
    for value in (execution.raw, record.raw):
        assert not jsonio.too_deep(value)
        assert jsonio.PRUNED in json.dumps(value)
    assert "the error" not in record.error  # it was deeper than the bound
    assert jsonio.PRUNED in record.error and jsonio.PRUNED in page  # said, not hidden
    assert "Deep record" in page and "Failed" in panel
    # The error text that holds 10,000 levels of JSON is a text: shown as such.
    text_panel = body_of(get(viewer_client, f"{BASE}steps/{TEXT}/", **HTMX))
    assert "[[[[[[[[" in text_panel


def test_parsing_never_recurses_on_depth():
    with pytest.raises(jsonio.JsonTooDeep):
        jsonio.loads(deep_array(DEEP))
    with pytest.raises(jsonio.JsonTooDeep):
        jsonio.loads(deep_object(1000))
    assert jsonio.loads(deep_array(512)) is not None
    with pytest.raises(jsonio.JsonTooDeep):
        jsonio.loads(deep_array(513))
    for text in (deep_array(DEEP), json.dumps(deep_object(DEEP))):
        with pytest.raises(QflowBadResponse, match=TOO_DEEP):
            parse_payload_text(text)
    # Inside a record, a string holding too deep JSON stays the string it is.
    assert parse_payload(deep_array(DEEP)) == deep_array(DEEP)
    pruned = jsonio.loads_pruned('{"ok": [1, "]["], "deep": ' + deep_array(DEEP) + "}")
    assert pruned["ok"] == [1, "]["] and not jsonio.too_deep(pruned)
    assert json.dumps(pruned).count(jsonio.PRUNED) == 1
    error_step = parse_step(jsonio.loads_pruned(json.dumps({"nodeId": "n", "error": 1})))
    assert error_step.error == "1"


def test_writing_is_bounded_too_and_streams_the_same_text():
    for levels in (254, 255, 300, 512):
        value = json.loads(deep_array(levels))
        assert jsonio.dumps(value) == deep_array(levels).encode()
        assert json.loads(jsonio.dumps(value, indent=True)) == value
        assert b"".join(jsonio.iter_dumps(value, indent=True)) == jsonio.dumps(value, indent=True)
    with pytest.raises(jsonio.JsonTooDeep):
        jsonio.dumps(json.loads(deep_array(600)))
    value = {"rows": [{"id": i, "tags": ["a", {"b": None}], "s": 'x\n"é'} for i in range(300)]}
    mixed = {
        "wide": [[i, {"x": list(range(70))}, {}] for i in range(300)],
        "named": {f"k{i}": {"v": [i] * (i % 3)} for i in range(100)},
        "narrow": {"data": {"items": [{"id": i} for i in range(600)]}},
    }
    for document in (value, mixed):
        for indent in (False, True):
            streamed = b"".join(jsonio.iter_dumps(document, indent=indent, chunk=1000))
            assert streamed == jsonio.dumps(document, indent=indent)
    # Each member within the bound, the whole one level deeper (the export): still written.
    export_like = [1] * 70 + [json.loads(deep_array(512))]
    with pytest.raises(jsonio.JsonTooDeep):
        jsonio.dumps(export_like)
    assert json.loads(b"".join(jsonio.iter_dumps(export_like))) == export_like
    odd = {"big": 2**70, "lone": "\ud800"}  # orjson refuses both: the stdlib writes them
    assert json.loads(jsonio.dumps(odd)) == odd
    jsonio.note_heavy(2 << 20)
    jsonio.release_after_heavy()  # glibc's malloc_trim, or nothing elsewhere: never an error
    weight = jsonio.sizeof(value)
    assert 0.8 * _exact_size(value) <= weight <= 1.2 * _exact_size(value)


def _exact_size(value: Any) -> int:
    import sys

    total, stack, keys = 0, [value], set()
    while stack:
        current = stack.pop()
        total += sys.getsizeof(current)
        if isinstance(current, dict):
            total += sum(sys.getsizeof(k) for k in current if id(k) not in keys)
            keys.update(id(k) for k in current)
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return total


# --- 500 levels: everything works ---------------------------------------------------------

FINE = "node-500-levels"
NEEDLE = "found-at-the-bottom"


def five_hundred_levels() -> str:
    # The root object (1) + 498 arrays + the object at the bottom (1) = 500 levels.
    bottom = json.dumps({"needle": NEEDLE, "n": 1})
    return (
        '{"rows": [{"name": "a", "id": 1}, {"name": "b", "id": 2}, {"name": "c", "id": 3}], '
        f'"deep": {deep_array(498, bottom)}}}'
    )


@pytest.fixture
def five_hundred(httpserver, settings):
    services.memo_clear()
    text = five_hundred_levels()
    fake = RawFake(
        components=[component("trigger", "Trigger", "trigger", FINE), component(FINE, "F", "x")],
        steps=[
            step("trigger", "trigger", "Success", 1),
            step(FINE, "resource", "Success", 2, details={"trace": raw_ref("trace")}),
        ],
        inputs={FINE: {"method": "getResources"}},
        execution={"status": "Success"},
        raw={"trace": deep_array(490, '"bottom"')},
        bodies={(FINE, "output"): (text.encode(), "application/json")},
    )
    return serve_fake(httpserver, settings, fake), json.loads(text)


def test_500_levels_work_end_to_end(five_hundred, viewer_client):
    _, value = five_hundred
    panel = f"{BASE}steps/{FINE}/"
    down_30 = "/deep" + "/0" * 30

    first = body_of(get(viewer_client, f"{panel}output/tree", **HTMX))
    row = StepPayload.objects.get(node_id=FINE, kind="output")
    subtree = get(viewer_client, f"{panel}output/tree?path={quote(down_30)}", **HTMX)
    search = body_of(get(viewer_client, f"{panel}output/tree?q={NEEDLE}", **HTMX))
    table = get(viewer_client, f"{panel}output/tree?path=/rows&view=table", **HTMX)
    download = get(viewer_client, f"{panel}output.json")
    part = get(viewer_client, f"{panel}output.json?path={quote(down_30)}")
    export = json.loads(body_of(get(viewer_client, f"{BASE}export.json")))
    page = get(viewer_client, f"{BASE}?step={FINE}")

    assert 'class="jt"' in first and TOO_DEEP not in first
    assert row.body == value and row.size == len(jsonio.dumps(value))
    assert subtree.status_code == 200 and "jt-list" in body_of(subtree)
    assert "1 match" in search and NEEDLE in search
    assert "/deep" + "/0" * 498 + "/needle" in search
    assert table.status_code == 200 and "<table" in body_of(table)
    assert json.loads(body_of(download)) == value
    inner = value["deep"]
    for _ in range(30):
        inner = inner[0]
    assert json.loads(body_of(part)) == inner
    assert next(s for s in export["steps"] if s["nodeId"] == FINE)["output"] == value
    assert page.status_code == 200
    record = Step.objects.get(node_id=FINE).raw
    assert jsonio.PRUNED not in json.dumps(record)  # 490 levels are kept as they are


def test_the_tree_opens_a_deep_payload_a_bounded_number_of_levels_at_a_time():
    from qflowui.executions import jsontree

    value = json.loads(five_hundred_levels())
    html = str(jsontree.render_tree(value, size=5000, urls=jsontree.TreeUrls("/t", "/d")))
    levels = max(p.count("/") for p in re.findall(r'data-p="([^"]*)"', html))

    assert levels <= jsontree.MAX_LEVELS + 1
    assert "open this part" in html  # the rest is fetched on demand


# --- payload answers that are not JSON -----------------------------------------------------

NOT_JSON = "node-not-json"


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"Service Temporarily Unavailable", "text/plain", "plain text instead of JSON"),
        (
            b"<!DOCTYPE html><html><body><h1>Sign in</h1></body></html>",
            "text/html; charset=utf-8",
            "an HTML page instead of",
        ),
        (b"<html><body>Bad gateway</body></html>", "application/json", "an HTML page instead"),
        (b"\x00\x9f\x92garbage\xff\xfe", "application/octet-stream", "instead of JSON"),
        (b'{"collection": [{"id": 1}, {"id"', "application/json", "invalid JSON"),
    ],
    ids=["text", "html", "html-as-json", "garbage", "cut-off"],
)
def test_a_payload_answer_that_is_not_json_is_an_error_and_never_stored(
    httpserver, settings, viewer_client, body, content_type, message
):
    services.memo_clear()
    fake = RawFake(
        components=[component("trigger", "T", "trigger", NOT_JSON), component(NOT_JSON, "N", "x")],
        steps=[step("trigger", "trigger", "Success", 1), step(NOT_JSON, "resource", "Success", 2)],
        inputs={NOT_JSON: {"ok": 1}},
        execution={"status": "Success"},
        bodies={(NOT_JSON, "output"): (body, content_type)},
    )
    serve_fake(httpserver, settings, fake)
    panel = f"{BASE}steps/{NOT_JSON}/"

    tree = body_of(get(viewer_client, f"{panel}output/tree", **HTMX))
    download = get(viewer_client, f"{panel}output.json")

    assert message in tree
    assert download.status_code == 404 and message in body_of(download)
    assert not StepPayload.objects.filter(node_id=NOT_JSON, kind="output").exists()
    assert StepPayload.objects.filter(node_id=NOT_JSON, kind="input").count() <= 1
    assert "Bad gateway" not in tree and "Sign in" not in tree and "Temporarily" not in tree


def test_a_payload_that_is_a_json_string_of_text_is_still_a_payload(
    httpserver, settings, viewer_client
):
    services.memo_clear()
    fake = RawFake(
        components=[component(NOT_JSON, "N", "x")],
        steps=[step(NOT_JSON, "resource", "Success", 1)],
        execution={"status": "Success"},
        bodies={(NOT_JSON, "output"): (b'"Nothing to tag today"', "application/json")},
    )
    serve_fake(httpserver, settings, fake)

    tree = body_of(get(viewer_client, f"{BASE}steps/{NOT_JSON}/output/tree", **HTMX))

    assert "Nothing to tag today" in tree
    assert StepPayload.objects.get(node_id=NOT_JSON, kind="output").body == "Nothing to tag today"


# --- megabyte texts ------------------------------------------------------------------------

LONG = "node-long-error"
SECRET = "hunter2-very-secret-value"


def megabytes_of(what: str, size: int = 2_000_000) -> str:
    line = f"at com.qualys.flow.{what}.Step.run(Step.java:42) <b>not markup</b>\n"
    text = line * (size // len(line))
    half = len(text) // 2
    return text[:half] + f" password={SECRET} " + text[half:]


@pytest.fixture
def long_texts(httpserver, settings):
    services.memo_clear()
    fake = RawFake(
        components=[component("trigger", "T", "trigger", LONG), component(LONG, "Long", "action")],
        steps=[
            step("trigger", "trigger", "Success", 1),
            step(LONG, "action", "Failed", 2, error=megabytes_of("error")),
        ],
        execution={
            "tags": ["team=secops", megabytes_of("tag")],
            # A variable is `name=value`: a long value under a harmless name.
            "variables": ["region=" + megabytes_of("var").replace(f"password={SECRET}", "x")],
        },
    )
    return serve_fake(httpserver, settings, fake)


def test_a_2_mb_step_error_makes_a_small_page_with_show_all(long_texts, viewer_client):
    page = body_of(get(viewer_client, BASE))
    with_panel = body_of(get(viewer_client, f"{BASE}?step={LONG}"))
    panel = body_of(get(viewer_client, f"{BASE}steps/{LONG}/", **HTMX))
    error_url = f"{BASE}steps/{LONG}/error.txt"

    for html in (page, with_panel, panel):
        assert len(html.encode()) < 200 * 1024, len(html)
        assert "Show all" in html and error_url in html
        assert "&lt;b&gt;not markup&lt;/b&gt;" in html and "<b>" not in html
        assert SECRET not in html
    assert re.search(r"Showing the first 10 KB of this error \(1\.9\sMB\)", page)
    assert f"{BASE}texts/tags/1.txt" in page and f"{BASE}texts/variables/0.txt" in page

    whole = get(viewer_client, error_url)
    as_file = get(viewer_client, f"{error_url}?download=1")
    text = body_of(whole)
    assert whole.status_code == 200 and whole["Content-Type"].startswith("text/plain")
    assert whole["X-Content-Type-Options"] == "nosniff"
    assert len(text) > 1_990_000 and text.endswith("(Step.java:42) <b>not markup</b>\n")
    assert SECRET not in text and "password=********" in text
    assert as_file["Content-Disposition"].startswith("attachment;")
    tag = body_of(get(viewer_client, f"{BASE}texts/tags/1.txt"))
    variable = body_of(get(viewer_client, f"{BASE}texts/variables/0.txt"))
    assert len(tag) > 1_990_000 and "flow.tag.Step" in tag and SECRET not in tag
    assert len(variable) > 1_990_000 and "flow.var.Step" in variable and SECRET not in variable
    assert get(viewer_client, f"{BASE}texts/tags/9.txt").status_code == 404
    assert get(viewer_client, f"{BASE}texts/raw/0.txt").status_code == 404
    assert get(viewer_client, f"{BASE}steps/trigger/error.txt").status_code == 404


def test_an_error_body_nested_10000_levels_deep_is_still_just_an_error():
    import requests

    from qflowui.qflow.errors import QflowUnavailable
    from qflowui.qflow.transport import error_for_response

    response = requests.Response()
    response.status_code = 500
    response._content = ("[" * 10_000 + "]" * 10_000).encode()

    error = error_for_response(response)

    assert isinstance(error, QflowUnavailable)
    assert "HTTP 500" in str(error)
