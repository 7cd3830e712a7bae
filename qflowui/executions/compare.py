"""Two executions side by side (issue 12): pure functions, no request, no upstream call.

- `key_diff` compares two flat mappings key by key (variables, the run's input, categories).
- `steps_align` lines up two executions' steps by node id and finds where they part ways.
- `json_diff` compares two (masked) payloads of any size: it walks both with an explicit
  stack (never Python recursion on QFlow's depth), skips equal subtrees at C speed (`==`),
  and stops after `max_changes` differences or `max_visits` values, so a 10 MB payload on
  either side gives a small answer: the changed paths first, then the unchanged subtrees,
  collapsed and counted.
- `last_success_pick` chooses the execution "Compare with the last success" opens.

Every value shown is a bounded preview (`preview`), written without recursion either.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from qflowui.executions import jsontree

ADDED, REMOVED, CHANGED, SAME = "added", "removed", "changed", "same"
MAX_CHANGES = 200  # differences listed by one node diff ("N more" after them)
MAX_UNCHANGED = 40  # unchanged subtrees listed (collapsed), "N more" after them
MAX_VISITS = 200_000  # values compared by one node diff before it stops and says so
PREVIEW_CHARS = 160  # characters of a value shown in a diff (the rest: "…")
DECODE_LIMIT = 256 * 1024  # strings holding JSON are compared as JSON up to this length


# --- previews ---------------------------------------------------------------------------------


def _scalar_text(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(str(value), ensure_ascii=False)


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """Compact JSON text of `value`, cut at about `limit` characters ("…" when cut).

    Built with an explicit stack and stopped as soon as it is long enough: a preview of a
    10 MB array costs what its first few items cost.
    """
    out: list[str] = []
    size = 0
    # Items: ("v", value) writes a value; ("t", text) writes text as is.
    stack: list[tuple[str, Any]] = [("v", value)]
    while stack and size <= limit:
        what, item = stack.pop()
        if what == "t":
            text = item
        elif isinstance(item, dict):
            parts: list[tuple[str, Any]] = [("t", "{")]
            for index, (key, child) in enumerate(item.items()):
                prefix = "," if index else ""
                parts += [("t", f"{prefix}{_scalar_text(str(key))}:"), ("v", child)]
                if index > limit:  # more keys than characters left: the rest is never shown
                    parts.append(("t", ",…"))
                    break
            parts.append(("t", "}"))
            stack.extend(reversed(parts))
            continue
        elif isinstance(item, list):
            parts = [("t", "[")]
            for index, child in enumerate(item[: limit + 1]):
                parts += [("t", "," if index else ""), ("v", child)]
            if len(item) > limit + 1:
                parts.append(("t", ",…"))
            parts.append(("t", "]"))
            stack.extend(reversed(parts))
            continue
        else:
            text = _scalar_text(item)
        out.append(text)
        size += len(text)
    text = "".join(out)
    if stack or len(text) > limit:
        return text[:limit] + "…"
    return text


def kind_of(value: Any) -> str:
    """What a value is, for a line of the diff: "object, 3 keys", "array, 12 items", "string"."""
    if isinstance(value, dict):
        return f"object, {jsontree.count_text(value)}"
    if isinstance(value, list):
        return f"array, {jsontree.count_text(value)}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _same(a: Any, b: Any) -> bool:
    """Equal JSON values (1 and 1.0 alike, but never True and 1)."""
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    return a == b


# --- flat mappings: variables, input, categories -----------------------------------------------


@dataclass
class KeyDiff:
    key: str
    change: str  # ADDED (only in b), REMOVED (only in a), CHANGED, SAME
    a: str = ""  # previews
    b: str = ""


def key_diff(a: dict[str, Any], b: dict[str, Any]) -> list[KeyDiff]:
    """Key by key: the changed, removed and added keys first (in that order), then the same."""
    rows: dict[str, list[KeyDiff]] = {CHANGED: [], REMOVED: [], ADDED: [], SAME: []}
    for key, value in a.items():
        if key not in b:
            rows[REMOVED].append(KeyDiff(key, REMOVED, a=_shown(value)))
        elif _same(value, b[key]):
            rows[SAME].append(KeyDiff(key, SAME, a=_shown(value), b=_shown(b[key])))
        else:
            rows[CHANGED].append(KeyDiff(key, CHANGED, a=_shown(value), b=_shown(b[key])))
    for key, value in b.items():
        if key not in a:
            rows[ADDED].append(KeyDiff(key, ADDED, b=_shown(value)))
    return [*rows[CHANGED], *rows[REMOVED], *rows[ADDED], *rows[SAME]]


def _shown(value: Any) -> str:
    """A variable's value as QFlow listed it ("us-east-1", not "\"us-east-1\"")."""
    return value if isinstance(value, str) and len(value) <= PREVIEW_CHARS else preview(value)


def variables_map(items: Iterable[Any]) -> dict[str, str]:
    """QFlow's variable strings (["region=us-east-1", ...]) as a mapping; the last one wins."""
    out: dict[str, str] = {}
    for item in items or []:
        if isinstance(item, str) and "=" in item:
            key, _, value = item.partition("=")
            if key.strip():
                out[key.strip()] = value
        elif isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = item.get("value")
    return out


def changed_count(rows: list[KeyDiff]) -> int:
    return sum(1 for row in rows if row.change != SAME)


# --- steps --------------------------------------------------------------------------------------


@dataclass
class StepSide:
    """One execution's step at a node, as the aligned table shows it."""

    status: str
    status_class: str
    event_order: int | None
    elapsed_ms: int | None
    error: str = ""


@dataclass
class AlignedStep:
    node_id: str
    name: str
    node_type: str
    a: StepSide | None  # None: did not run in a
    b: StepSide | None
    index: int = 0

    @property
    def only_in(self) -> str:
        if self.a is None:
            return "b"
        return "a" if self.b is None else ""

    @property
    def status_differs(self) -> bool:
        if self.a is None or self.b is None:
            return True
        return self.a.status_class != self.b.status_class or self.a.status != self.b.status

    @property
    def delta_ms(self) -> int | None:
        """b's duration minus a's, when both ran and both have one."""
        if self.a is None or self.b is None:
            return None
        if self.a.elapsed_ms is None or self.b.elapsed_ms is None:
            return None
        return self.b.elapsed_ms - self.a.elapsed_ms


def steps_align(
    a: dict[str, StepSide],
    b: dict[str, StepSide],
    names: dict[str, tuple[str, str]],
    order: list[str] | None = None,
) -> list[AlignedStep]:
    """The union of both executions' nodes, in the order they ran.

    `a` and `b` map node ids to their steps; `names` maps a node id to (name, type). The
    order is a's run order with b's extra nodes placed after the node b ran them after
    (so "ran only in b" appears where it happened), then `order` (the workflow
    definition's) for nodes neither ran.
    """

    def run_order(side: dict[str, StepSide]) -> list[str]:
        ranked = sorted(
            enumerate(side.items()),
            key=lambda item: (
                item[1][1].event_order is None,
                item[1][1].event_order or 0,
                item[0],
            ),
        )
        return [node for _, (node, _) in ranked]

    merged = run_order(a)
    placed = set(merged)
    previous: str | None = None
    for node in run_order(b):
        if node not in placed:
            at = merged.index(previous) + 1 if previous is not None else 0
            # After any b-only nodes already placed right there, keeping b's own order.
            while at < len(merged) and merged[at] not in a:
                at += 1
            merged.insert(at, node)
            placed.add(node)
        previous = node
    rows = []
    for index, node in enumerate(merged):
        name, node_type = names.get(node, ("", ""))
        rows.append(AlignedStep(node, name, node_type, a.get(node), b.get(node), index))
    return rows


def first_divergence(rows: list[AlignedStep]) -> AlignedStep | None:
    """The first node, in run order, whose status differs or that ran in only one of them."""
    return next((row for row in rows if row.status_differs), None)


# --- payloads -----------------------------------------------------------------------------------


@dataclass
class Change:
    path: str  # JSON pointer
    change: str  # ADDED, REMOVED, CHANGED
    a: str = ""  # previews
    b: str = ""
    a_kind: str = ""
    b_kind: str = ""

    @property
    def shown_path(self) -> str:
        return self.path or "(the whole value)"


@dataclass
class Unchanged:
    path: str
    kind: str

    @property
    def shown_path(self) -> str:
        return self.path or "(the whole value)"


@dataclass
class JsonDiff:
    changes: list[Change] = field(default_factory=list)
    more_changes: int = 0  # differences found past max_changes (counted, not listed)
    unchanged: list[Unchanged] = field(default_factory=list)
    more_unchanged: int = 0
    stopped: bool = False  # max_visits reached: more differences may exist
    visits: int = 0
    identical: bool = False

    @property
    def total_changes(self) -> int:
        return len(self.changes) + self.more_changes


def _container(value: Any) -> Any:
    """A container to walk into: a dict, a list, or JSON held in a (not too long) string."""
    if isinstance(value, dict | list):
        return value
    if isinstance(value, str) and len(value) <= DECODE_LIMIT:
        return jsontree.decoded(value)
    return None


def json_diff(
    a: Any,
    b: Any,
    *,
    max_changes: int = MAX_CHANGES,
    max_unchanged: int = MAX_UNCHANGED,
    max_visits: int = MAX_VISITS,
) -> JsonDiff:
    """The differences between two JSON values, by path, in document order.

    Objects are compared key by key (a's keys in a's order, then b's new ones); arrays item
    by item, by position (an item inserted at the front shows as every later item changed:
    the cap keeps that answer small). Equal subtrees are not walked: they are listed as
    unchanged, collapsed, once each at the shallowest level where they are equal.
    """
    result = JsonDiff()
    if _same(a, b):
        result.identical = True
        result.unchanged.append(Unchanged("", kind_of(a)))
        return result
    stack: list[tuple[tuple[str, ...], Any, Any]] = [((), a, b)]

    def change(path: tuple[str, ...], what: str, left: Any = None, right: Any = None) -> None:
        if len(result.changes) >= max_changes:
            result.more_changes += 1
            return
        pointer = jsontree.pointer_join(path)
        item = Change(pointer, what)
        if what != ADDED:
            item.a, item.a_kind = preview(left), kind_of(left)
        if what != REMOVED:
            item.b, item.b_kind = preview(right), kind_of(right)
        result.changes.append(item)

    while stack:
        path, left, right = stack.pop()
        result.visits += 1
        if result.visits > max_visits:
            result.stopped = True
            break
        if _same(left, right):
            if len(result.unchanged) < max_unchanged:
                result.unchanged.append(Unchanged(jsontree.pointer_join(path), kind_of(left)))
            else:
                result.more_unchanged += 1
            continue
        left_c, right_c = _container(left), _container(right)
        if isinstance(left_c, dict) and isinstance(right_c, dict):
            children: list[tuple[tuple[str, ...], Any, Any]] = []
            for key, value in left_c.items():
                sub = (*path, str(key))
                if key in right_c:
                    children.append((sub, value, right_c[key]))
                else:
                    children.append((sub, value, _MISSING))
            for key, value in right_c.items():
                if key not in left_c:
                    children.append(((*path, str(key)), _MISSING, value))
            stack.extend(reversed(children))
            continue
        if isinstance(left_c, list) and isinstance(right_c, list):
            common = min(len(left_c), len(right_c))
            extra_left, extra_right = left_c[common:], right_c[common:]
            tail: list[tuple[tuple[str, ...], Any, Any]] = []
            # Past the common length every item is added or removed: no walk into them,
            # and only as many as can still be listed are even looked at.
            room = max(0, max_changes - len(result.changes)) + 1
            for offset, value in enumerate(extra_left[:room]):
                tail.append(((*path, str(common + offset)), value, _MISSING))
            for offset, value in enumerate(extra_right[:room]):
                tail.append(((*path, str(common + offset)), _MISSING, value))
            uncounted = max(0, len(extra_left) - room) + max(0, len(extra_right) - room)
            result.more_changes += uncounted
            pairs = [((*path, str(i)), left_c[i], right_c[i]) for i in range(common)]
            stack.extend(reversed([*pairs, *tail]))
            continue
        if left is _MISSING:
            change(path, ADDED, right=right)
        elif right is _MISSING:
            change(path, REMOVED, left=left)
        else:
            change(path, CHANGED, left, right)
    return result


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


# --- "Compare with the last success" ------------------------------------------------------------


@dataclass
class Candidate:
    """A successful execution of the same workflow, as the pick sees it."""

    execution_id: str
    started_at: datetime
    connector: str
    region: str


def last_success_pick(
    started_at: datetime, connector: str, region: str, candidates: Iterable[Candidate]
) -> tuple[Candidate, bool, bool] | None:
    """The success to compare with: the same connector and region if any (then the same
    connector, then the same region, then any), and among those the latest before
    `started_at`, else the nearest after it. Returns it with (same connector, same region).
    """
    best: tuple[tuple[int, int, float], Candidate] | None = None
    for item in candidates:
        same_connector = bool(connector) and item.connector == connector
        same_region = bool(region) and item.region == region
        tier = (not same_connector) * 2 + (not same_region)  # 0 both ... 3 neither
        gap = (item.started_at - started_at).total_seconds()
        key = (tier, 0 if gap <= 0 else 1, abs(gap))
        if best is None or key < best[0]:
            best = (key, item)
    if best is None:
        return None
    item = best[1]
    return (
        item,
        bool(connector) and item.connector == connector,
        bool(region) and item.region == region,
    )


def connector_of(variables: Any, categories: Any) -> str:
    """The connector an execution ran with: its `connectorId` variable (QFLOW-API.md §4),
    else the first connector account it touched (categories' `accounts`, "@<uuid>")."""
    found = variables_map(variables if isinstance(variables, list) else []).get("connectorId")
    if isinstance(found, str) and found.strip():
        return found.strip().lstrip("@").lower()
    accounts = categories.get("accounts") if isinstance(categories, dict) else None
    for value in accounts if isinstance(accounts, list) else []:
        if isinstance(value, str) and value.startswith("@"):
            return value[1:].strip().lower()
    return ""
