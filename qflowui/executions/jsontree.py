"""A collapsible JSON tree for step payloads, rendered on the server with a byte budget.

Payloads can be megabytes of cloud inventory, so a view never renders all of it: at most
`MAX_CHILDREN` children per container (then "show more" by path and offset), at most
`NODE_BUDGET` nodes per response, and long strings cut short. Containers below the open
levels are either inline but closed (small payloads) or fetched on demand by their JSON
pointer (large ones). Strings that are themselves JSON (QFlow's parseJson=false form) are
shown decoded, with the raw text one click away.

Every piece of payload text reaches the HTML through `format_html` (escaped); the tree is
built in Python rather than with a recursive template include because a template costs
~50 µs per node and we must stay inside the first-view budget for 10 MB payloads.

Depth: one response renders at most `MAX_LEVELS` levels below where it starts (deeper
containers are links fetched on demand), so the renderer's recursion is bounded by that
constant, never by the payload's depth; searches walk with an explicit stack; JSON held in
strings is read with `jsonio` (nested deeper than jsonio.MAX_DEPTH, it stays a string).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from qflowui.core import jsonio

MAX_CHILDREN = 100  # children rendered per container and per "show more"
NODE_BUDGET = 1500  # nodes rendered in one response
STRING_PREVIEW = 300  # characters of a string shown before "show all"
RAW_PREVIEW = 2000  # characters of a JSON-in-a-string shown in its "raw" box
INLINE_LIMIT = 64 * 1024  # payloads up to this size carry every level in the first view...
MAX_LEVELS = 24  # ...down to this many levels: deeper ones are fetched on demand
LARGE_LIMIT = 1024 * 1024  # above this, the first view opens two levels on a tight budget...
LARGE_BUDGET = MAX_CHILDREN * 4  # ...of this many nodes (and is drawn from a stored head)
OPEN_LEVELS = 2  # levels open in a first view
SUMMARY_ITEMS = 8  # top-level items described by `summary`
SEARCH_LIMIT = 200  # matches listed by a search
TABLE_COLUMNS = 12
TABLE_CELL = 120


class PathNotFound(LookupError):
    """The path does not name a value in this payload."""


# --- paths ----------------------------------------------------------------------------------

_DOTTED = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def pointer_parse(path: str) -> list[str]:
    """A JSON pointer ("/collection/0/name") or a dotted path ("collection[0].name", "a.0.b")."""
    path = (path or "").strip()
    if not path or path == "/":
        return []
    if path.startswith("/"):
        return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]
    return [m.group(1) if m.group(1) is not None else m.group(2) for m in _DOTTED.finditer(path)]


def pointer_join(tokens: list[str] | tuple[str, ...]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


def decoded(value: Any) -> Any:
    """The object or array a string holds as JSON text, else None."""
    if not isinstance(value, str) or len(value) < 2 or isinstance(value, CutText):
        return None
    head = value.lstrip()[:1]
    if head not in ("{", "["):
        return None
    try:
        inner = jsonio.loads(value)
    except ValueError:  # not JSON, or nested too deep (JsonTooDeep): shown as the string it is
        return None
    return inner if isinstance(inner, dict | list) else None


def _container(value: Any) -> Any:
    """`value` as a container to walk into (decoding JSON strings), or None for scalars."""
    if isinstance(value, dict | list | Shape):
        return value
    return decoded(value)


def resolve(value: Any, tokens: list[str]) -> Any:
    """The value at `tokens`, walking into JSON strings as into containers."""
    current = value
    for token in tokens:
        container = _container(current)
        if isinstance(container, dict):
            if token not in container:
                raise PathNotFound(token)
            current = container[token]
        elif isinstance(container, list):
            if not token.isdigit() or int(token) >= len(container):
                raise PathNotFound(token)
            current = container[int(token)]
        else:
            raise PathNotFound(token)
    return current


def _items(container: dict | list) -> Iterator[tuple[str, Any]]:
    if isinstance(container, dict):
        for key, item in container.items():
            yield str(key), item
    else:
        for index, item in enumerate(container):
            yield str(index), item


def _slice(container: dict | list, start: int, stop: int) -> list[tuple[str, Any]]:
    if isinstance(container, Shape):
        if container.children is None:
            raise HeadIncomplete("a closed container of the head")
        return container.children[start:stop]
    if isinstance(container, list):
        return [(str(i), container[i]) for i in range(start, min(stop, len(container)))]
    out = []
    for index, pair in enumerate(_items(container)):
        if index >= stop:
            break
        if index >= start:
            out.append(pair)
    return out


# --- summaries -------------------------------------------------------------------------------


def _is_object(container: Any) -> bool:
    return isinstance(container, dict) or (isinstance(container, Shape) and container.is_dict)


def count_text(container: dict | list) -> str:
    n = len(container)
    if _is_object(container):
        return f"{n:,} key" + ("" if n == 1 else "s")
    return f"{n:,} item" + ("" if n == 1 else "s")


def summary(value: Any, size: int) -> list[str]:
    """Plain-text lines about a payload's top level (for large payloads' first view)."""
    container = _container(value)
    lines = [f"{filesizeformat(size)} of JSON"]
    if container is None:
        return lines
    kind = "an object" if _is_object(container) else "an array"
    lines[0] += f", {kind} with {count_text(container)}"
    for key, item in _slice(container, 0, SUMMARY_ITEMS):
        inner = _container(item)
        if inner is not None:
            lines.append(f"{key}: {count_text(inner)}")
    return lines


def similar_objects(value: Any) -> bool:
    """An array of objects sharing their keys: worth a table view."""
    if isinstance(value, Shape):
        return value.similar
    if not isinstance(value, list) or len(value) < 2:
        return False
    sample = value[:MAX_CHILDREN]
    objects = [item for item in sample if isinstance(item, dict)]
    if len(objects) < 0.8 * len(sample):
        return False
    keys = _columns(objects)
    return 0 < len(keys) <= 3 * TABLE_COLUMNS


def _columns(objects: list[dict]) -> list[str]:
    seen: dict[str, int] = {}
    for item in objects:
        for key in item:
            seen[str(key)] = seen.get(str(key), 0) + 1
    return sorted(seen, key=lambda k: -seen[k])


# --- the head of a large payload ----------------------------------------------------------
#
# The first view of a payload above LARGE_LIMIT shows two levels on a budget of LARGE_BUDGET
# nodes: a few hundred values out of millions. Its *head*, computed once when the payload is
# stored and kept beside it, holds exactly what that view and `summary` read, so a later
# view renders from a few kilobytes instead of decoding megabytes:
#
# - the values the view visits (a pre-order walk of the open levels, MAX_CHILDREN children
#   per container, LARGE_BUDGET nodes and then one more), with strings longer than
#   STRING_PREVIEW kept as `CutText` (their first characters and their length);
# - for each container (`Shape`), what the view says of it closed: its length, whether it is
#   a table (`similar_objects`), the fields of its preview, and for JSON held in a string the
#   start of its raw text;
# - the first SUMMARY_ITEMS top-level items, for `summary`.
#
# The renderer takes a head wherever it takes a value; if a view ever asks for more than the
# head holds it raises HeadIncomplete (never renders something else), and the caller renders
# from the whole payload. A head is versioned (HEAD_VERSION): a head written under other
# rules is not used.

HEAD_VERSION = 1


class HeadIncomplete(LookupError):
    """The view asks for a part of the payload its head does not hold."""


class CutText(str):
    """A long string of a head: its first STRING_PREVIEW characters; `total` is its length."""

    total: int

    def __new__(cls, prefix: str, total: int) -> CutText:
        text = super().__new__(cls, prefix)
        text.total = total
        return text


class Shape:
    """A container of a head: what a first view shows of it, and the children it visits
    (`children`: (key, value) pairs; None when it is only ever shown closed)."""

    __slots__ = ("children", "is_dict", "preview", "raw", "raw_cut", "similar", "total")

    def __init__(
        self,
        is_dict: bool,
        total: int,
        similar: bool,
        preview: list[tuple[str, str]],
        raw: str | None = None,
        raw_cut: bool = False,
        children: list[tuple[str, Any]] | None = None,
    ) -> None:
        self.is_dict = is_dict
        self.total = total
        self.similar = similar
        self.preview = preview
        self.raw = raw  # the start of the string holding this JSON, None for a plain container
        self.raw_cut = raw_cut
        self.children = children

    def __len__(self) -> int:
        return self.total


def _shape(value: Any, inner: dict | list) -> Shape:
    raw, raw_cut = None, False
    if not isinstance(value, dict | list):  # JSON held in a string
        text = str(value)
        raw, raw_cut = text[:RAW_PREVIEW], len(text) > RAW_PREVIEW
    return Shape(
        isinstance(inner, dict),
        len(inner),
        similar_objects(inner),
        _preview_pairs(inner),
        raw,
        raw_cut,
    )


def _head_scalar(value: Any) -> Any:
    if isinstance(value, str) and len(value) > STRING_PREVIEW:
        return CutText(value[:STRING_PREVIEW], len(value))
    return value


def head_of(value: Any) -> Any:
    """The head of a large payload's first view (see above), as values the renderer takes."""
    visited = 0

    def visit(item: Any, depth: int) -> Any:  # depth < OPEN_LEVELS + 1: bounded recursion
        nonlocal visited
        visited += 1
        inner = _container(item)
        if inner is None:
            return _head_scalar(item)
        shape = _shape(item, inner)
        if depth < OPEN_LEVELS and visited <= LARGE_BUDGET:
            children = []
            for key, child in _slice(inner, 0, MAX_CHILDREN):
                if visited > LARGE_BUDGET:
                    break
                children.append((key, visit(child, depth + 1)))
            if depth == 0:  # the items `summary` describes, shown closed if at all
                for key, child in _slice(inner, len(children), SUMMARY_ITEMS):
                    closed = _container(child)
                    children.append(
                        (key, _head_scalar(child) if closed is None else _shape(child, closed))
                    )
            shape.children = children
        return shape

    return visit(value, 0)


def head_dumps(head: Any) -> Any:
    """A head as a JSON value (for storage): {"v": HEAD_VERSION, "root": node}, where a node
    is ["s", scalar], ["c", start, length] (CutText) or ["o"/"a", length, similar, preview,
    raw, raw_cut, children] (Shape; children [[key, node], ...] or null)."""

    def node(value: Any) -> Any:  # a head is a few levels deep: bounded recursion
        if isinstance(value, Shape):
            children = None
            if value.children is not None:
                children = [[key, node(child)] for key, child in value.children]
            preview = [list(pair) for pair in value.preview]
            kind = "o" if value.is_dict else "a"
            return [kind, value.total, value.similar, preview, value.raw, value.raw_cut, children]
        if isinstance(value, CutText):
            return ["c", str(value), value.total]
        return ["s", value]

    return {"v": HEAD_VERSION, "root": node(head)}


@dataclass(frozen=True)
class Head:
    root: Any  # what the renderer takes in place of the payload


def head_loads(stored: Any) -> Head | None:
    """The head `head_dumps` wrote, or None if there is none or it was written under other
    rules (another HEAD_VERSION, or not a head at all)."""
    if not isinstance(stored, dict) or stored.get("v") != HEAD_VERSION or "root" not in stored:
        return None

    def node(item: Any, depth: int) -> Any:
        if depth > OPEN_LEVELS + 1:
            raise ValueError("nested deeper than a head")
        tag = item[0]
        if tag == "s":
            return item[1]
        if tag == "c":
            return CutText(item[1], item[2])
        kind, total, similar, preview, raw, raw_cut, children = item
        shape = Shape(kind == "o", total, similar, [(k, t) for k, t in preview], raw, raw_cut)
        if children is not None:
            shape.children = [(key, node(child, depth + 1)) for key, child in children]
        return shape

    try:
        return Head(node(stored["root"], 0))
    except (ValueError, TypeError, IndexError, KeyError):
        return None


# --- rendering -------------------------------------------------------------------------------


def _join(parts: list[SafeString]) -> SafeString:
    """Concatenate fragments that were each built with format_html (so already escaped)."""
    if not all(isinstance(p, SafeString) for p in parts):
        raise TypeError("only format_html output may be joined into the tree")
    return SafeString("".join(parts))


EMPTY = SafeString("")
NULL_HTML = SafeString('<span class="jt-null">null</span>')
DECODED_HTML = SafeString('<span class="jt-badge">decoded from a JSON string</span>')
SMALL_SUBTREE = 400  # nodes: a subtree this small is sent whole when fetched by path


@dataclass
class TreeUrls:
    """Where the tree's on-demand pieces come from (the step's input or output)."""

    tree: str  # .../<kind>/tree
    download: str  # .../<kind>.json

    def at(self, tokens: list[str], **extra: Any) -> str:
        params = {"path": pointer_join(tokens), **{k: v for k, v in extra.items() if v}}
        return f"{self.tree}?{urlencode(params)}"


@dataclass
class _Render:
    urls: TreeUrls
    open_depth: int  # levels open below the start
    lazy: bool  # closed containers are fetched on demand, not sent inline
    budget: int = NODE_BUDGET

    def spend(self) -> bool:
        self.budget -= 1
        return self.budget >= 0


def _scalar(value: Any, full: bool, urls: TreeUrls, tokens: list[str]) -> SafeString:
    if value is None:
        return NULL_HTML
    if isinstance(value, bool):
        return format_html('<span class="jt-bool">{}</span>', "true" if value else "false")
    if isinstance(value, int | float):
        return format_html('<span class="jt-num">{}</span>', json.dumps(value))
    text = str(value)
    length = value.total if isinstance(value, CutText) else len(text)
    if full or length <= STRING_PREVIEW:
        return format_html('<span class="jt-str">"{}"</span>', text)
    rest = length - STRING_PREVIEW
    url = urls.at(tokens, full="1")
    return format_html(
        '<span class="jt-str">"{}…"</span> <a class="jt-more" href="{}" hx-get="{}" '
        'hx-target="closest li" hx-swap="outerHTML">show all ({} more characters)</a>',
        text[:STRING_PREVIEW],
        url,
        url,
        f"{rest:,}",
    )


def _key_html(key: str | None, is_index: bool) -> SafeString:
    if key is None:
        return EMPTY
    if is_index:
        return format_html('<span class="jt-i">{}</span>', key)
    return format_html('<span class="jt-k">{}</span>', key)


def _node(
    key: str | None,
    value: Any,
    tokens: list[str],
    depth: int,
    ctx: _Render,
    *,
    is_index: bool = False,
    full: bool = False,
) -> SafeString:
    ctx.spend()
    path = pointer_join(tokens)
    key_html = _key_html(key, is_index)
    inner = _container(value)
    if inner is None:
        return format_html(
            '<li class="jt-n" data-p="{}">{}{}</li>',
            path,
            key_html,
            _scalar(value, full, ctx.urls, tokens),
        )
    if isinstance(value, Shape):
        was_string = value.raw is not None
    else:
        was_string = not isinstance(value, dict | list)
    badges = []
    if was_string:
        badges.append(DECODED_HTML)
    if similar_objects(inner):
        url = ctx.urls.at(tokens, view="table")
        badges.append(
            format_html(
                '<a class="jt-view" href="{}" hx-get="{}" hx-target="closest li" '
                'hx-swap="outerHTML">table</a>',
                url,
                url,
            )
        )
    brackets = ("{", "}") if _is_object(inner) else ("[", "]")
    if not inner:
        return format_html(
            '<li class="jt-n" data-p="{}">{}<span class="jt-sum">{}{}</span>{}</li>',
            path,
            key_html,
            brackets[0],
            brackets[1],
            _join(badges),
        )
    is_open = depth < ctx.open_depth and ctx.budget > 0
    head = format_html(
        '<summary>{}<span class="jt-sum">{}{}{}</span>{}{}</summary>',
        key_html,
        brackets[0],
        count_text(inner),
        brackets[1],
        _join(badges),
        EMPTY if is_open else _preview(inner),
    )
    raw = EMPTY
    if was_string:
        if isinstance(value, Shape):
            shown, cut = value.raw, "…" if value.raw_cut else ""
        else:
            text = str(value)
            shown, cut = text[:RAW_PREVIEW], "…" if len(text) > RAW_PREVIEW else ""
        raw = format_html(
            '<details class="jt-raw"><summary>raw string</summary><pre>{}{}</pre></details>',
            shown,
            cut,
        )
    if is_open or (not ctx.lazy and depth < MAX_LEVELS):
        body = _children(inner, tokens, 0, depth + 1, ctx)
    else:
        url = ctx.urls.at(tokens)
        return format_html(
            '<li class="jt-n" data-p="{}"><details hx-get="{}" hx-trigger="toggle once" '
            'hx-target="find .jt-lazy" hx-swap="outerHTML">{}{}<ul class="jt-list jt-lazy">'
            '<li><a href="{}">open this part</a></li></ul></details></li>',
            path,
            url,
            head,
            raw,
            url,
        )
    return format_html(
        '<li class="jt-n" data-p="{}"><details{}>{}{}{}</details></li>',
        path,
        " open" if is_open else "",
        head,
        raw,
        body,
    )


_NAMING_KEYS = ("name", "id", "arn", "key", "title", "type", "status")


def _preview_pairs(container: Any) -> list[tuple[str, str]]:
    """An object's first scalar fields as (key, shortened text): what `_preview` picks from."""
    if isinstance(container, Shape):
        return container.preview
    if not isinstance(container, dict):
        return []
    pairs = []
    for key, value in _slice(container, 0, 12):
        if isinstance(value, str | int | float) and not isinstance(value, bool) and value != "":
            text = str(value)
            pairs.append((str(key), text if len(text) <= 48 else text[:47] + "…"))
    return pairs


def _preview(container: dict | list) -> SafeString:
    """A closed object's identifying fields (name, id, ARN...), so rows can be told apart."""
    scalars = _preview_pairs(container)
    if not scalars:
        return EMPTY
    named = [kv for kv in scalars if any(n in kv[0].lower() for n in _NAMING_KEYS)]
    shown = (named or scalars)[:2]
    parts = []
    for key, text in shown:
        parts.append(format_html("{}: {}", key, text))
    return format_html(
        '<span class="jt-prev">{}</span>', format_html_join(", ", "{}", ((p,) for p in parts))
    )


def _children(
    container: dict | list, tokens: list[str], offset: int, depth: int, ctx: _Render
) -> SafeString:
    return format_html(
        '<ul class="jt-list">{}</ul>', _child_items(container, tokens, offset, depth, ctx)
    )


def _child_items(
    container: dict | list, tokens: list[str], offset: int, depth: int, ctx: _Render
) -> SafeString:
    is_list = not _is_object(container)
    parts: list[SafeString] = []
    stop = offset + MAX_CHILDREN
    shown = offset
    for key, item in _slice(container, offset, stop):
        if ctx.budget <= 0:
            break
        parts.append(_node(key, item, [*tokens, key], depth, ctx, is_index=is_list))
        shown += 1
    if isinstance(container, Shape) and ctx.budget > 0 and shown < min(stop, len(container)):
        raise HeadIncomplete("the head holds fewer children than this view shows")
    remaining = len(container) - shown
    if remaining > 0:
        url = ctx.urls.at(tokens, offset=str(shown))
        parts.append(
            format_html(
                '<li class="jt-more-row"><a class="jt-more" href="{}" hx-get="{}" '
                'hx-target="closest li" hx-swap="outerHTML">show {} more of {}</a></li>',
                url,
                url,
                f"{min(remaining, MAX_CHILDREN):,}",
                f"{remaining:,}",
            )
        )
    return _join(parts)


def render_tree(value: Any, *, size: int, urls: TreeUrls) -> SafeString:
    """The first view of a payload: top levels open, the rest closed (and lazy if large)."""
    if size > LARGE_LIMIT:
        # The top two levels, with at most MAX_CHILDREN closed items under each.
        ctx = _Render(urls=urls, open_depth=OPEN_LEVELS, lazy=True, budget=LARGE_BUDGET)
    elif size > INLINE_LIMIT:
        ctx = _Render(urls=urls, open_depth=OPEN_LEVELS, lazy=True)
    else:
        ctx = _Render(urls=urls, open_depth=OPEN_LEVELS, lazy=False)
    return format_html('<ul class="jt-list jt-root">{}</ul>', _node(None, value, [], 0, ctx))


def render_subtree(
    value: Any, tokens: list[str], *, urls: TreeUrls, offset: int = 0, full: bool = False
) -> SafeString:
    """What the tree endpoint returns for `path`: that value's children, or more of them.

    With an offset, the next children as bare `<li>` items (they replace the "show more"
    row); for a scalar (or `full`), the one node with its whole text.
    """
    target = resolve(value, tokens)
    inner = _container(target)
    ctx = _Render(urls=urls, open_depth=1, lazy=not _smaller_than(inner, SMALL_SUBTREE))
    key = tokens[-1] if tokens else None
    if inner is None or full:
        return _node(key, target, tokens, 0, ctx, full=True)
    if offset:
        return _child_items(inner, tokens, offset, 1, ctx)
    return _children(inner, tokens, 0, 1, ctx)


def _smaller_than(value: Any, limit: int) -> bool:
    """True if `value` has fewer than `limit` nodes (counting stops at the limit)."""
    count = 0
    stack = [value]
    while stack:
        current = stack.pop()
        count += 1
        if count >= limit:
            return False
        if isinstance(current, dict):
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return True


def render_table(value: Any, tokens: list[str], *, urls: TreeUrls) -> SafeString:
    """An array of similar objects as a table (first MAX_CHILDREN rows), in a tree row."""
    target = _container(resolve(value, tokens))
    if not isinstance(target, list):
        raise PathNotFound("not an array")
    rows = target[:MAX_CHILDREN]
    columns = _columns([r for r in rows if isinstance(r, dict)])[:TABLE_COLUMNS]
    head = _join([format_html("<th>{}</th>", c) for c in ["#", *columns]])
    body = []
    for index, row in enumerate(rows):
        cells = [format_html('<td class="jt-i">{}</td>', index)]
        for column in columns:
            cell = row.get(column, EMPTY) if isinstance(row, dict) else EMPTY
            cells.append(format_html("<td>{}</td>", _cell(cell)))
        body.append(format_html("<tr>{}</tr>", _join(cells)))
    url = urls.at(tokens, view="row")
    more = ""
    if len(target) > len(rows):
        more = f"First {len(rows):,} of {len(target):,} rows; the tree view pages through all."
    return format_html(
        '<li class="jt-n" data-p="{}"><div class="jt-table-head">{}<span class="jt-sum">'
        '[{}]</span> <a class="jt-view" href="{}" hx-get="{}" hx-target="closest li" '
        'hx-swap="outerHTML">tree</a> <span class="muted">{}</span></div>'
        '<div class="jt-table-wrap"><table class="jt-table"><thead><tr>{}</tr></thead>'
        "<tbody>{}</tbody></table></div></li>",
        pointer_join(tokens),
        _key_html(tokens[-1] if tokens else None, False),
        count_text(target),
        url,
        url,
        more,
        head,
        _join(body),
    )


def render_row(value: Any, tokens: list[str], *, urls: TreeUrls) -> SafeString:
    """One tree row, open one level (what the table view switches back to)."""
    ctx = _Render(urls=urls, open_depth=1, lazy=True)
    key = tokens[-1] if tokens else None
    is_index = bool(tokens) and tokens[-1].isdigit()
    return _node(key, resolve(value, tokens), tokens, 0, ctx, is_index=is_index)


def _cell(value: Any) -> Any:
    if value is EMPTY:
        return EMPTY
    inner = _container(value)
    if inner is not None:
        return format_html('<span class="jt-sum">{}</span>', count_text(inner))
    if value is None:
        return NULL_HTML
    text = json.dumps(value) if isinstance(value, bool | int | float) else str(value)
    return text if len(text) <= TABLE_CELL else text[:TABLE_CELL] + "…"


# --- search -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    tokens: tuple[str, ...]
    on_key: bool
    is_container: bool
    value: str  # the scalar's text (shortened), "" for a container


def search(value: Any, query: str, *, limit: int = SEARCH_LIMIT) -> tuple[list[Match], bool]:
    """Paths whose key or scalar value contains `query` (any case), in document order.

    Walks into JSON strings too. The second value is True when the list was cut at `limit`.
    """
    needle = query.strip().lower()
    if not needle:
        return [], False
    found: list[Match] = []
    stack: list[tuple[tuple[str, ...], Any, bool]] = [((), value, True)]
    while stack:
        tokens, current, is_index = stack.pop()
        key_hit = not is_index and needle in tokens[-1].lower()
        inner = _container(current)
        if inner is None:
            text = _scalar_text(current)
            if key_hit or needle in text.lower():
                found.append(Match(tokens, key_hit, False, text[:STRING_PREVIEW]))
        else:
            if key_hit:
                found.append(Match(tokens, True, True, ""))
            is_list = isinstance(inner, list)
            children = [((*tokens, key), item, is_list) for key, item in _items(inner)]
            stack.extend(reversed(children))
        if len(found) >= limit:
            return found[:limit], bool(stack)
    return found, False


_NUMBER_CHARS = "0123456789.+-e"


def may_match(text: str, query: str, *, lowered: bool = False) -> bool:
    """False only if `search(value, query)` surely finds nothing, `text` being the JSON text
    of `value` as stored (orjson's, or any JSON writer's): a case-insensitive substring test
    on the text, ~50 times faster than the walk over a 10 MB payload.

    Why a miss in the text is a miss in the walk: a key or string (also inside JSON held in
    strings, at any depth) is written in the text as its characters, except `"`, `\\` and
    control characters (escaped), and characters written as `\\uXXXX` or `\\/`; lower-casing
    is per character (but for the Greek final sigma); `null`, `true` and `false` are written
    as such. So the test is not used (True: walk) when the query holds any of those
    characters, may be part of a number (whose text the walk writes its own way), or when
    the text holds `\\u` or `\\/`. `lowered`: `text` is in lower case already (JSON's
    escapes are, so their tests hold on it).
    """
    needle = query.strip().lower()
    if not needle:
        return False
    if any(char in '"\\σς' or char < " " for char in needle):
        return True
    if not needle.strip(_NUMBER_CHARS):
        return True
    if "\\u" in text or "\\/" in text:
        return True
    return needle in (text if lowered else text.lower())


def _scalar_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return str(value)


def highlight(text: str, query: str) -> SafeString:
    """`text` escaped, with every case-insensitive occurrence of `query` in <mark>."""
    needle = query.strip()
    if not needle:
        return format_html("{}", text)
    parts: list[SafeString] = []
    lower, low_needle = text.lower(), needle.lower()
    start = 0
    while True:
        at = lower.find(low_needle, start)
        if at < 0:
            parts.append(format_html("{}", text[start:]))
            break
        parts.append(format_html("{}<mark>{}</mark>", text[start:at], text[at : at + len(needle)]))
        start = at + len(needle)
    return _join(parts)


def render_no_match(query: str) -> SafeString:
    """What a search that found nothing shows."""
    return format_html('<p class="jt-results-empty muted">No key or value matches “{}”.</p>', query)


def render_search(
    value: Any, query: str, *, urls: TreeUrls, limit: int = SEARCH_LIMIT
) -> SafeString:
    matches, cut = search(value, query, limit=limit)
    if not matches:
        return render_no_match(query)
    rows = []
    for match in matches:
        tokens = list(match.tokens)
        shown_path = pointer_join(tokens) or "/"
        parent = tokens if match.is_container else tokens[:-1]
        url = urls.at(parent)
        value_html = (
            format_html(' <span class="jt-str">{}</span>', highlight(match.value, query))
            if match.value
            else EMPTY
        )
        rows.append(
            format_html(
                '<li data-p="{}"><a class="jt-path" href="{}" hx-get="{}" '
                'hx-target="next .jt-focus" hx-swap="innerHTML">{}</a>{}</li>',
                shown_path,
                url,
                url,
                highlight(shown_path, query),
                value_html,
            )
        )
    note = f"first {limit}" if cut else f"{len(matches)}"
    return format_html(
        '<p class="jt-results-count">{} match{} for “{}”</p><ol class="jt-results-list">{}</ol>'
        '<div class="jt-focus"></div>',
        note,
        "" if len(matches) == 1 and not cut else "es",
        query,
        _join(rows),
    )
