"""Hostile text from QFlow stays text: names, ids, errors, tags, JSON keys and values, labels.

A fake QFlow on a loopback server puts markup, event handlers, `javascript:` URLs, SVG,
htmx attributes and template syntax in every field the detail pages show. Every HTML
response is parsed and must hold no element or attribute that did not come from us; the
JSON downloads keep the text exactly; a real browser sees no dialog and no injected node.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from django.core.cache import cache

from qflowui.executions import services
from tests.test_execution_detail_support import (
    EXECUTION_ID,
    FakeQflow,
    component,
    serve_fake,
    step,
)

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE = [
    '<script>window.__pwned=1;alert("s")</script>',
    '"><img src=x onerror="window.__pwned=1;alert(1)">',
    '\'><svg onload="window.__pwned=1;alert(2)">',
    "<svg><script>window.__pwned=1</script></svg>",
    "javascript:alert(4)",
    '<a href="javascript:alert(5)">click me</a>',
    '<div hx-get="/executions/" hx-trigger="load" hx-target="body" hx-swap="outerHTML">x</div>',
    '<button hx-on:click="window.__pwned=1">b</button>',
    '{{ "pwned"|upper }}',
    '{% now "Y" %}{% debug %}',
    "</textarea></title></style><iframe src=javascript:alert(7)></iframe>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(8)>",
    "]]><!-- --><![CDATA[<script>alert(9)</script>]]>",
]
# Node ids QFlow could send that the API client still accepts (no / \ ? # % or spaces).
NODE_IDS = [
    "node-<b>bold<b>-resource",
    'node-"onmouseover=alert(10)"-action',
    "javascript:alert(11)",
    "node-{{pwn}}-{%debug%}",
]
# Our own htmx URLs: the execution's fragments, and the header's scheduler status (base.html).
OUR_URL = re.compile(r"^/executions/[0-9a-f]{8}-[0-9a-f-]{27}/|^/runs/scheduler/$|^/views/nav/$")
HX_URLS = ("hx-get", "hx-post", "hx-put", "hx-delete", "hx-patch", "hx-push-url")
URL_ATTRS = ("href", "src", "action", "xlink:href", "formaction")
OUR_TARGETS = {
    "#step-panel",
    "closest li",
    "closest .payload",
    "find .jt-lazy",
    "next .jt-results",
    "next .jt-focus",
}
OUR_TRIGGERS = {
    "load",
    "toggle once",
    "every 5s",
    "every 1s",
    "load, every 60s",
    "load, every 60s, teamviews-changed from:body",
}
FORBIDDEN_TAGS = {
    "img",
    "iframe",
    "object",
    "embed",
    "math",
    "style",
    "foreignobject",
    "textarea",
    "b",
}


def _hostile_json() -> dict:
    return {
        "plain": HOSTILE,
        **{text: text for text in HOSTILE},
        "nested": {HOSTILE[0]: {HOSTILE[1]: [HOSTILE[2], {HOSTILE[6]: HOSTILE[7]}]}},
        "as_string": json.dumps({HOSTILE[3]: HOSTILE[4], "list": HOSTILE}),
        "rows": [{"name": text, "id": i} for i, text in enumerate(HOSTILE)],
    }


@pytest.fixture
def hostile(httpserver, settings):
    cache.clear()
    services.memo_clear()
    first, second, third, fourth = NODE_IDS
    components = [
        component("trigger", HOSTILE[0], HOSTILE[1], first),
        component(first, HOSTILE[2], HOSTILE[3], {HOSTILE[5]: second, HOSTILE[6]: [third]}),
        component(second, HOSTILE[7], HOSTILE[8], fourth),
        component(third, HOSTILE[9], HOSTILE[10]),
        component(fourth, HOSTILE[11], HOSTILE[12]),
    ]
    fake = FakeQflow(
        workflow_name=HOSTILE[1],
        components=components,
        steps=[
            step("trigger", HOSTILE[1], "Success", 1),
            step(first, "resource", "Success", 2),
            step(second, "action", HOSTILE[1], 3, error=" ".join(HOSTILE)),
            step(third, "action", "Failed", 4, error=HOSTILE[0]),
        ],
        inputs={first: _hostile_json(), second: {"k": HOSTILE}},
        outputs={first: _hostile_json(), "trigger": HOSTILE},
        execution={
            "source": HOSTILE[4],
            "executionType": HOSTILE[6],
            "tags": HOSTILE,
            "variables": [f"{t}={t}" for t in HOSTILE],
            "categories": {"cloud_providers": HOSTILE[:3], HOSTILE[5]: [HOSTILE[7]]},
            "parentExecutionId": None,
        },
    )
    return serve_fake(httpserver, settings, fake)


class _Audit(HTMLParser):
    """Collects what a hostile string could have smuggled in as markup."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag.lower() in FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            name = name.lower()
            value = value or ""
            if name.startswith("on") or name.startswith("hx-on"):
                self.problems.append(f"{tag} {name}")
            if name in HX_URLS and not OUR_URL.match(value):
                self.problems.append(f"{tag} {name}={value}")
            if name == "hx-target" and value not in OUR_TARGETS:
                self.problems.append(f"{tag} hx-target={value}")
            if name in URL_ATTRS and value.lower().lstrip().startswith("javascript:"):
                self.problems.append(f"{tag} {name}={value}")
            if name == "hx-trigger" and value not in OUR_TRIGGERS:
                self.problems.append(f"{tag} hx-trigger={value}")
        if tag == "script":
            src = dict(attrs).get("src") or ""
            if not src.startswith("/static/"):
                self.problems.append(f"<script src={src!r}>")


def _audit(html: str) -> list[str]:
    parser = _Audit()
    parser.feed(html)
    return parser.problems


def _responses(client) -> dict[str, tuple[str, str]]:
    base = f"/executions/{EXECUTION_ID}/"
    first, second, *_ = NODE_IDS
    from urllib.parse import quote

    panel = f"{base}steps/{quote(first, safe='')}/"
    htmx = {"HTTP_HX_REQUEST": "true"}
    urls = {
        "page": (base, {}),
        "live": (base, {**htmx, "HTTP_HX_TARGET": "live"}),
        "page with panel": (f"{base}?step={quote(first, safe='')}", {}),
        "failed panel": (f"{base}steps/{quote(second, safe='')}/", {}),
        "panel": (panel, htmx),
        "input tree": (f"{panel}input/tree", htmx),
        "output tree": (f"{panel}output/tree", htmx),
        "cached panel": (panel, htmx),
        "subtree": (f"{panel}output/tree?path=/nested", htmx),
        "subtree page": (f"{panel}output/tree?path={quote('/' + HOSTILE[0])}", {}),
        "decoded": (f"{panel}output/tree?path=/as_string", htmx),
        "whole string": (f"{panel}output/tree?path=/plain/0&full=1", htmx),
        "table": (f"{panel}output/tree?path=/rows&view=table", htmx),
        "row": (f"{panel}output/tree?path=/rows&view=row", htmx),
        "search": (f"{panel}output/tree?q=script", htmx),
        "search page": (f"{panel}output/tree?q={quote('<svg')}", {}),
        "trigger": (f"{base}steps/trigger/output/tree", htmx),
        "unknown step": (f"{base}steps/{quote(HOSTILE[4], safe='')}/", {}),
        "download": (f"{panel}output.json", {}),
        "export": (f"{base}export.json", {}),
    }
    out = {}
    for name, (url, headers) in urls.items():
        response = client.get(url, **headers)
        assert response.status_code in (200, 286, 404), (name, response.status_code)
        out[name] = (response["Content-Type"], response.getvalue().decode())
    return out


def test_hostile_text_in_every_shown_field_comes_out_escaped(hostile, viewer_client):
    responses = _responses(viewer_client)

    problems = {
        name: _audit(body)
        for name, (kind, body) in responses.items()
        if kind.startswith("text/html") and _audit(body)
    }
    assert problems == {}
    page = responses["page"][1]
    assert "&lt;script&gt;window.__pwned=1;" in page  # shown, as text
    assert "PWNED" not in "".join(body for _, body in responses.values())
    assert '{{ "pwned"|upper }}'.replace('"', "&quot;") in page


def test_hostile_text_survives_exactly_in_the_json_downloads(hostile, viewer_client):
    responses = _responses(viewer_client)

    download = json.loads(responses["download"][1])
    export = json.loads(responses["export"][1])

    assert download["plain"] == HOSTILE
    assert download[HOSTILE[6]] == HOSTILE[6]
    assert [s["nodeId"] for s in export["steps"]] == ["trigger", *NODE_IDS[:3]]
    assert export["execution"]["tags"] == HOSTILE


@pytest.mark.browser
def test_in_a_real_browser_no_dialog_fires_and_no_injected_element_appears(
    hostile, live_server, page, viewer, login
):
    from urllib.parse import quote

    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    login(page, viewer)
    base = f"{live_server.url}/executions/{EXECUTION_ID}/"

    page.goto(base)
    page.locator(".graph-svg").wait_for()
    node = page.locator(f".graph-svg g.node[data-node-id='{NODE_IDS[0]}'] a")
    node.click()
    page.locator("#payload-output .jt").wait_for()
    page.locator("#payload-input .jt").wait_for()
    output = page.locator("#payload-output")
    output.locator("input[name=q]").fill("script")
    output.locator(".jt-search button").click()
    output.locator(".jt-results mark").first.wait_for()
    output.locator(".jt-results a.jt-path").first.click()
    output.locator(".jt-focus li").first.wait_for()
    output.locator(".jt-view").first.click()
    page.wait_for_timeout(300)
    page.goto(f"{base}?step={quote(NODE_IDS[1], safe='')}")
    page.locator("#step-panel .panel").wait_for()
    page.wait_for_timeout(500)

    injected = page.evaluate(
        """() => ({
            pwned: window.__pwned === undefined ? null : window.__pwned,
            elements: document.querySelectorAll(
                'img, iframe, object, embed, math, style, foreignObject, textarea, b,'
                + ' [onerror], [onload]'
            ).length,
            scripts: [...document.scripts].filter(s => !s.src.includes('/static/')).length,
            live: !!document.getElementById('live'),
        })"""
    )
    assert dialogs == []
    assert injected == {"pwned": None, "elements": 0, "scripts": 0, "live": True}
