"""The head of a large payload: a first view drawn from it is the first view drawn from the
whole payload, byte for byte, whatever the payload's shape."""

from __future__ import annotations

import json
import random

import orjson
import pytest

from qflowui.core import jsonio
from qflowui.executions import jsontree as jt
from qflowui.simulator.payloads import big_inventory

URLS = jt.TreeUrls(tree="/t", download="/d.json")
BIG = jt.LARGE_LIMIT + 1


def _stored(value):
    """The head as a view gets it: built, written as JSON, read back."""
    head = jt.head_loads(orjson.loads(jsonio.dumps(jt.head_dumps(jt.head_of(value)))))
    assert head is not None
    return head.root


def _same_first_view(value) -> None:
    value = jsonio.loads(jsonio.dumps(value))  # as stored: e.g. integers past 64 bits are floats
    head = _stored(value)
    assert str(jt.render_tree(head, size=BIG, urls=URLS)) == str(
        jt.render_tree(value, size=BIG, urls=URLS)
    )
    assert jt.summary(head, BIG) == jt.summary(value, BIG)


def _text(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.05:
        return "x" * rng.choice([0, 47, 48, 49, 299, 300, 301, 2500])
    if kind < 0.1:  # JSON held in a string, small or past the raw preview
        inner = {"k": [rng.randint(0, 9) for _ in range(rng.choice([1, 3, 700]))], "name": "n"}
        return json.dumps(inner)
    if kind < 0.13:
        return "[1]" + " " * 298 + "x" * 400  # starts like JSON, is not
    if kind < 0.16:
        return "Σημείο <b>&amp;</b> \n\t" + "é" * rng.randint(0, 400)
    return rng.choice(["", "arn:aws:s3:::b", "id-" + str(rng.random()), "NON_COMPLIANT"])


def _value(rng: random.Random, depth: int, made: list[int]) -> object:
    made[0] += 1
    roll = rng.random()
    if depth > 4 or roll < 0.3 + 0.1 * depth or made[0] > 15_000:
        return rng.choice(
            [None, True, False, 0, -3, 1.5, 1e16, 2**70, _text(rng), _text(rng), _text(rng)]
        )
    width = rng.choice([0, 1, 2, 5, 12, 40, 101, 250] if depth < 2 else [0, 1, 3, 13, 101])
    if roll < 0.7:
        keys = rng.choice([["name", "id", "type", "size"], [f"k{i}" for i in range(50)]])
        return {
            (keys[i] if i < len(keys) else f"x{i}"): _value(rng, depth + 1, made)
            for i in range(width)
        }
    if rng.random() < 0.5:  # similar objects: a table
        return [{"name": f"n{i}", "id": i, "tags": {"a": 1}} for i in range(width)]
    return [_value(rng, depth + 1, made) for _ in range(width)]


@pytest.mark.parametrize("seed", range(60))
def test_random_payloads_render_the_same_from_their_head(seed):
    rng = random.Random(seed)
    _same_first_view(_value(rng, 0, [0]))


@pytest.mark.parametrize(
    "value",
    [
        None,
        "just text",
        "x" * 5000,
        json.dumps({"a": [1, 2, 3], "b": {"c": "d"}}),  # the payload is JSON held in a string
        json.dumps([{"name": i, "v": "y" * 400} for i in range(300)]),
        [],
        {},
        [[]] * 3,
        {"": {"": {"": 1}}},
        [list(range(150)) for _ in range(150)],
        {f"k{i}": {f"j{j}": "v" * j for j in range(120)} for i in range(20)},
        {"only": [{"deep": [{"deeper": [1]}]}] * 500},
    ],
)
def test_edge_shapes_render_the_same_from_their_head(value):
    _same_first_view(value)


def test_a_cloud_inventory_renders_the_same_from_its_head_and_the_head_is_small():
    value = orjson.loads(big_inventory("head", "123456789012", "us-east-1", 1, 2_000_000))
    _same_first_view(value)
    assert len(jsonio.dumps(jt.head_dumps(jt.head_of(value)))) < 200_000


def test_a_head_of_other_rules_or_no_head_is_not_used():
    head = jt.head_dumps(jt.head_of({"a": 1}))
    assert jt.head_loads(head) is not None
    assert jt.head_loads({**head, "v": jt.HEAD_VERSION + 1}) is None
    assert jt.head_loads(None) is None
    assert jt.head_loads({"v": jt.HEAD_VERSION, "root": ["o", 1]}) is None


def test_a_view_asking_for_more_than_the_head_holds_raises_rather_than_guessing():
    value = {"items": [{"n": i} for i in range(100)]}
    head = _stored(value)
    head.children[0][1].children = head.children[0][1].children[:10]  # lose children
    with pytest.raises(jt.HeadIncomplete):
        jt.render_tree(head, size=BIG, urls=URLS)
    head = _stored(value)
    head.children[0][1].children = None  # a closed container opened by the view
    with pytest.raises(jt.HeadIncomplete):
        jt.render_tree(head, size=BIG, urls=URLS)


def test_cut_text_is_never_read_as_json():
    text = "[1]" + " " * 298 + "x" * 400
    head = _stored({"s": text})
    cut = head.children[0][1]
    assert isinstance(cut, jt.CutText) and cut.total == len(text)
    assert jt.decoded(cut) is None
