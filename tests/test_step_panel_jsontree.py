"""The JSON tree builder: paths, bounded rendering, lazy subtrees, decoded strings, search."""

from __future__ import annotations

import json
import re

import pytest

from qflowui.executions import jsontree as jt

URLS = jt.TreeUrls(tree="/t", download="/d.json")


def _paths(html: str) -> list[str]:
    return [
        p.replace("&quot;", '"').replace("&amp;", "&")
        for p in re.findall(r'data-p="([^"]*)"', html)
    ]


@pytest.mark.parametrize(
    ("path", "tokens"),
    [
        ("", []),
        ("/", []),
        ("/collection/0/name", ["collection", "0", "name"]),
        ("/a~1b/c~0d", ["a/b", "c~d"]),
        ("collection[0].name", ["collection", "0", "name"]),
        ("meta.step.message", ["meta", "step", "message"]),
    ],
)
def test_json_pointers_and_dotted_paths_both_name_a_value(path, tokens):
    assert jt.pointer_parse(path) == tokens


def test_a_pointer_round_trips_through_join_and_parse():
    tokens = ["a/b", "~x", "0", ""]
    assert jt.pointer_parse(jt.pointer_join(tokens)) == tokens


def test_resolve_walks_into_strings_that_hold_json():
    value = {"body": json.dumps({"items": [{"id": "i-1"}]})}
    assert jt.resolve(value, ["body", "items", "0", "id"]) == "i-1"
    with pytest.raises(jt.PathNotFound):
        jt.resolve(value, ["body", "nope"])
    with pytest.raises(jt.PathNotFound):
        jt.resolve([1, 2], ["5"])


def test_a_small_payload_is_sent_whole_with_the_deeper_levels_closed():
    value = {"a": {"b": {"c": {"d": 1}}}}
    html = str(jt.render_tree(value, size=50, urls=URLS))

    assert _paths(html) == ["", "/a", "/a/b", "/a/b/c", "/a/b/c/d"]
    assert html.count("<details open") == 2  # the root and /a
    assert "hx-get" not in html


def test_a_large_payload_opens_two_levels_and_loads_the_rest_on_demand():
    value = {"collection": [{"n": i, "tags": {"k": "v"}} for i in range(500)], "ok": True}
    html = str(jt.render_tree(value, size=2_000_000, urls=URLS))

    paths = _paths(html)
    assert paths[:3] == ["", "/collection", "/collection/0"]
    assert "/collection/0/n" not in paths
    assert len([p for p in paths if p.startswith("/collection/")]) == jt.MAX_CHILDREN
    assert 'hx-get="/t?path=%2Fcollection%2F0"' in html
    assert 'hx-trigger="toggle once"' in html
    assert "show 100 more of 400" in html


def test_children_are_capped_and_the_rest_come_by_offset():
    value = {"items": list(range(250))}
    first = str(jt.render_subtree(value, ["items"], urls=URLS))
    more = str(jt.render_subtree(value, ["items"], urls=URLS, offset=100))
    last = str(jt.render_subtree(value, ["items"], urls=URLS, offset=200))

    assert _paths(first) == [f"/items/{i}" for i in range(100)]
    assert "show 100 more of 150" in first and "offset=100" in first
    assert _paths(more) == [f"/items/{i}" for i in range(100, 200)]
    assert _paths(last) == [f"/items/{i}" for i in range(200, 250)]
    assert "show" not in last


def test_a_subtree_by_path_holds_exactly_that_subtree():
    value = {"a": {"x": 1, "y": [True, None]}, "b": "other"}
    html = str(jt.render_subtree(value, ["a"], urls=URLS))

    assert _paths(html) == ["/a/x", "/a/y", "/a/y/0", "/a/y/1"]
    assert "other" not in html


def test_a_large_subtree_fetched_by_path_loads_its_own_children_on_demand():
    value = {"a": [{"k": list(range(50))} for _ in range(50)]}
    html = str(jt.render_subtree(value, ["a"], urls=URLS))

    assert _paths(html) == [f"/a/{i}" for i in range(50)]
    assert 'hx-get="/t?path=%2Fa%2F0"' in html


def test_long_strings_are_cut_with_a_way_to_see_them_whole():
    text = "x" * 5000
    first = str(jt.render_tree({"s": text}, size=5010, urls=URLS))
    whole = str(jt.render_subtree({"s": text}, ["s"], urls=URLS, full=True))

    assert "x" * jt.STRING_PREVIEW in first and "x" * (jt.STRING_PREVIEW + 1) not in first
    assert "show all (4,700 more characters)" in first
    assert text in whole


def test_a_string_holding_json_is_shown_decoded_with_the_raw_text_at_hand():
    raw = json.dumps({"instances": [{"id": "i-1"}]})
    html = str(jt.render_tree({"output": raw}, size=100, urls=URLS))

    assert "decoded from a JSON string" in html
    assert "/output/instances/0/id" in _paths(html)
    assert "raw string" in html
    assert "{&quot;instances&quot;" in html


def test_values_of_each_type_are_styled_apart():
    html = str(jt.render_tree({"s": "t", "n": 1.5, "b": False, "z": None}, size=40, urls=URLS))
    for css, shown in (
        ("jt-str", '"t"'),
        ("jt-num", "1.5"),
        ("jt-bool", "false"),
        ("jt-null", "null"),
    ):
        assert f'<span class="{css}">{shown}</span>' in html
    assert '<span class="jt-k">s</span>' in html


def test_an_array_of_similar_objects_offers_a_table():
    rows = [{"id": f"i-{i}", "state": "stopped", "tags": {"a": 1}} for i in range(3)]
    tree = str(jt.render_tree({"rows": rows}, size=200, urls=URLS))
    table = str(jt.render_table({"rows": rows}, ["rows"], urls=URLS))

    assert "view=table" in tree
    assert "<th>id</th>" in table and "<th>state</th>" in table
    assert "<td>i-2</td>" in table
    assert "1 key" in table


def test_search_lists_matching_keys_and_values_in_document_order():
    value = {"Instances": [{"InstanceId": "i-0abc", "State": "running"}], "note": "running late"}
    matches, cut = jt.search(value, "RUNNING")

    assert not cut
    assert [(jt.pointer_join(list(m.tokens)), m.on_key) for m in matches] == [
        ("/Instances/0/State", False),
        ("/note", False),
    ]
    assert [jt.pointer_join(list(m.tokens)) for m in jt.search(value, "instance")[0]] == [
        "/Instances",
        "/Instances/0/InstanceId",
    ]


def test_search_stops_at_its_limit_and_says_so():
    matches, cut = jt.search({"x": ["hit"] * 50}, "hit", limit=10)
    assert len(matches) == 10 and cut


def test_search_results_highlight_the_match_and_escape_the_rest():
    value = {"<b>key</b>": "a <script>needle</script> b"}
    html = str(jt.render_search(value, "needle", urls=URLS))

    assert "<mark>needle</mark>" in html
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html


def test_the_summary_counts_the_top_level():
    lines = jt.summary({"collection": list(range(12345)), "meta": {"a": 1}}, 10_500_000)
    lines = [line.replace("\xa0", " ") for line in lines]
    assert lines[0].startswith("10.0 MB of JSON, an object with 2 keys")
    assert "collection: 12,345 items" in lines


# --- depth: bounded rendering, never recursion on the payload's depth -------------------------


def _nested(levels: int, bottom: object) -> object:
    value = bottom
    for _ in range(levels):
        value = [value]
    return value


def test_a_deep_payload_renders_a_bounded_number_of_levels_whatever_its_size():
    value = {"deep": _nested(500, {"needle": "bottom"})}
    for size in (100, 100_000, 2_000_000):  # inline, lazy, large
        html = str(jt.render_tree(value, size=size, urls=URLS))
        assert max(p.count("/") for p in _paths(html)) <= jt.MAX_LEVELS + 1
    path = ["deep", *["0"] * 480]
    subtree = str(jt.render_subtree(value, path, urls=URLS))
    assert _paths(subtree)[0] == jt.pointer_join([*path, "0"])
    matches, _ = jt.search(value, "bottom")
    assert [len(m.tokens) for m in matches] == [502]


def test_a_string_holding_json_nested_too_deep_stays_a_string():
    text = "[" * 600 + "]" * 600
    html = str(jt.render_tree({"s": text}, size=len(text), urls=URLS))

    assert jt.decoded(text) is None
    assert "decoded from a JSON string" not in html
    assert "show all (900 more characters)" in html
