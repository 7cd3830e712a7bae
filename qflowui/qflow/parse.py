"""Pure functions that turn QFlow JSON into the records in :mod:`qflowui.qflow.types`.

QFlow's documentation is thin and sometimes contradicts itself (see
``shared/QFLOW-API.md``), so these functions accept every documented variant and
reject anything structurally wrong with :class:`QflowBadResponse`, never with a
bare ``KeyError`` or ``TypeError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from qflowui.core import jsonio

from .errors import QflowBadResponse
from .types import (
    Edge,
    Execution,
    Node,
    Page,
    RateLimitInfo,
    RunResult,
    Step,
    Variable,
    Workflow,
    WorkflowDefinition,
)

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Keys under which includeSteps=true might put the steps; the real one is undocumented.
_STEP_LIST_KEYS = ("steps", "items", "executionSteps")
_FAILED_STATUSES = frozenset({"failed", "failure", "error", "errored", "timeout", "timed out"})
_RATE_HEADERS = {
    "limit": "x-ratelimit-limit",
    "window_sec": "x-ratelimit-window-sec",
    "remaining": "x-ratelimit-remaining",
    "to_wait_sec": "x-ratelimit-towait-sec",
    "concurrency_limit": "x-concurrency-limit-limit",
    "concurrency_running": "x-concurrency-limit-running",
}


# --- small converters -------------------------------------------------------------


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise QflowBadResponse(f"{what}: expected a JSON object, got {_type_name(body)}")
    return body


def _unwrap(body: Any, what: str) -> dict[str, Any]:
    """Single objects come as ``{"data": {...}}`` on some endpoints and bare on others."""
    body = _object(body, what)
    inner = body.get("data")
    if isinstance(inner, dict) and not any(k in body for k in ("id", "execution", "nodeId")):
        return inner
    return body


def _opt_str(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise QflowBadResponse(f"{name} should be a string, got {_type_name(value)}")


def _required_str(raw: Mapping[str, Any], keys: Iterable[str], what: str) -> str:
    for key in keys:
        value = _opt_str(raw.get(key), f"{what} {key}")
        if value:
            return value
    raise QflowBadResponse(f"{what} has no {' / '.join(keys)}")


def _opt_int(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise QflowBadResponse(f"{name} should be a number, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise QflowBadResponse(f"{name} should be a whole number, got {value!r:.40}")


def parse_ms(value: Any, name: str = "timestamp") -> datetime | None:
    """Epoch milliseconds (int, float or digit string) or an ISO string -> aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        return _parse_iso(value, name)
    ms = _opt_int(value, name) if not isinstance(value, float) else value
    try:
        # Integer arithmetic keeps milliseconds exact, unlike fromtimestamp(ms / 1000).
        return _EPOCH + timedelta(milliseconds=ms)
    except (OverflowError, TypeError, ValueError) as exc:
        raise QflowBadResponse(f"{name} {value!r:.40} is not a valid timestamp") from exc


def _parse_iso(value: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise QflowBadResponse(f"{name} {value!r:.40} is not a valid date") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [str(v) for v in value if v is not None and v != ""]
    return [str(value)]


def _created_by(tags: list[str], raw: Mapping[str, Any]) -> str | None:
    for tag in tags:
        key, sep, value = tag.partition("=")
        if sep and key.strip() == "created_by" and value.strip():
            return value.strip()
    return _opt_str(raw.get("createdBy"), "createdBy")


def _message_text(value: Any) -> str | None:
    if value is None or value == "" or value == {} or value == []:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        return value["message"]
    try:
        return jsonio.dumps_text(value)
    except ValueError:  # deeper than jsonio.MAX_DEPTH: cannot be written, say so
        return f"(an error object nested deeper than {jsonio.MAX_DEPTH} levels)"


# --- payloads ---------------------------------------------------------------------


def parse_payload(body: Any) -> Any:
    """Make parseJson=false bodies (JSON text inside a JSON string) equal parseJson=true ones.

    A string that decodes as JSON is decoded, and once more if QFlow encoded it
    twice; a plain string that is not JSON stays a string (so does one holding JSON nested
    deeper than jsonio.MAX_DEPTH: it is kept as the text it is).
    """
    return _decode_strings(body, strict=False)


def _decode_strings(value: Any, *, strict: bool) -> Any:
    for _ in range(2):
        if not isinstance(value, str):
            break
        try:
            value = jsonio.loads(value)
        except jsonio.JsonTooDeep:
            if strict:
                raise QflowBadResponse(_TOO_DEEP_PAYLOAD) from None
            break
        except ValueError:
            break
    return value


_TOO_DEEP_PAYLOAD = (
    f"QFlow sent JSON nested deeper than {jsonio.MAX_DEPTH} levels for a step payload"
)


def parse_payload_text(text: str) -> Any:
    """Decode a step input/output response body given as text.

    The body must be JSON: the value itself (parseJson=true) or a JSON string holding its
    JSON text (parseJson=false), also as the docs print it (escaped, without the outer
    quotes). Anything else (a plain-text or HTML answer from a proxy, a body cut off in
    transit, JSON nested deeper than jsonio.MAX_DEPTH) raises QflowBadResponse: it is never
    taken for the step's data. An empty body is no data (None).
    """
    if not text.strip():
        return None
    try:
        return _decode_strings(jsonio.loads(text), strict=True)
    except jsonio.JsonTooDeep:
        raise QflowBadResponse(_TOO_DEEP_PAYLOAD) from None
    except ValueError:
        pass
    stripped = text.strip()
    try:
        # The docs' unquoted form: accepted only when what it holds is JSON.
        inner = jsonio.loads(f'"{stripped}"')
        return _decode_strings(jsonio.loads(inner), strict=True)
    except jsonio.JsonTooDeep:
        raise QflowBadResponse(_TOO_DEEP_PAYLOAD) from None
    except ValueError:
        pass
    raise QflowBadResponse(not_json_message(stripped, "a step payload"))


def not_json_message(text: str, what: str) -> str:
    """What to say about a body that is not JSON: an HTML page, cut-off JSON, or plain text."""
    head = text.lstrip()[:512].lower()
    if not head:
        return f"QFlow sent an empty body instead of {what}"
    if head.startswith("<"):
        if "<html" in head or "<!doctype html" in head or "<body" in head or "<head" in head:
            return f"QFlow sent an HTML page instead of {what}"
        return f"QFlow sent markup (HTML or XML) instead of {what}"
    if head.startswith(("{", "[", '"')):
        # JSON that does not parse (a body cut off in transit) must not pass for a string.
        return f"QFlow sent invalid JSON for {what}"
    return f"QFlow sent plain text instead of JSON for {what}"


# --- workflows --------------------------------------------------------------------


def _deployed(raw: Mapping[str, Any]) -> bool | None:
    for key in ("deployed", "isDeployed", "deploymentStatus", "deployStatus"):
        value = raw.get(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            word = value.strip().lower()
            if word in {"deployed", "true", "yes", "active"}:
                return True
            if word in {"undeployed", "not deployed", "false", "no", "inactive"}:
                return False
    return None


def _workflow_name(raw: Mapping[str, Any]) -> str:
    for key in ("name", "title", "qflowName"):
        value = raw.get(key)
        if isinstance(value, str) and value.strip():
            return value
    qflow = raw.get("qflow")
    if isinstance(qflow, dict) and isinstance(qflow.get("name"), str):
        return qflow["name"]
    return ""


def _category(value: Any) -> str | None:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value if v) or None
    return _opt_str(value, "category")


def _cloud_providers(raw: Mapping[str, Any]) -> list[str]:
    for key in ("cloudProviders", "cloud_providers", "cloudProvider"):
        if raw.get(key):
            return _str_list(raw[key])
    categories = raw.get("categories")
    if isinstance(categories, dict):
        return _str_list(_clean_list(categories.get("cloud_providers")))
    return []


def parse_workflow(body: Any) -> Workflow:
    """A workflow from the list endpoint or from ``GET /workflows/{id}`` (``{"data": ...}``)."""
    raw = _unwrap(body, "workflow")
    tags = _str_list(raw.get("tags"))
    definition = raw.get("definition")
    return Workflow(
        id=_required_str(raw, ("id", "workflow", "workflowId"), "workflow"),
        name=_workflow_name(raw),
        description=_opt_str(raw.get("description"), "description") or "",
        category=_category(raw.get("category")),
        cloud_providers=_cloud_providers(raw),
        deployed=_deployed(raw),
        created_at=parse_ms(raw.get("createdAt"), "createdAt"),
        updated_at=parse_ms(raw.get("updatedAt"), "updatedAt"),
        tags=tags,
        created_by=_created_by(tags, raw),
        revision=_opt_str(raw.get("revision"), "revision"),
        definition=None if definition in (None, "") else parse_definition(definition),
        raw=raw,
    )


def parse_definition(value: Any) -> WorkflowDefinition:
    """The workflow graph. QFlow sends ``definition`` as a JSON-encoded string."""
    if isinstance(value, str | bytes):
        try:
            value = jsonio.loads_pruned(value)
        except ValueError as exc:
            raise QflowBadResponse(f"workflow definition is not valid JSON ({exc})") from exc
    raw = _object(value, "workflow definition")
    components = raw.get("components", raw.get("nodes"))
    if components is None:
        components = []
    if not isinstance(components, list):
        raise QflowBadResponse("workflow definition: components should be a list")
    nodes: list[Node] = []
    edges: list[Edge] = []
    for component in components:
        node, node_edges = _node(component)
        nodes.append(node)
        edges.extend(node_edges)
    return WorkflowDefinition(
        variables=_variables(raw.get("variables")),
        nodes=nodes,
        edges=_with_back_links(edges, nodes),
        raw=raw,
    )


def _variables(value: Any) -> list[Variable]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [Variable(key=str(k), value=v) for k, v in value.items()]
    if not isinstance(value, list):
        raise QflowBadResponse("workflow definition: variables should be a list")
    out = []
    for item in value:
        item = _object(item, "workflow variable")
        out.append(
            Variable(key=_required_str(item, ("key", "name"), "variable"), value=item.get("value"))
        )
    return out


def _node(component: Any) -> tuple[Node, list[Edge]]:
    raw = _object(component, "workflow component")
    node_id = _required_str(raw, ("id",), "workflow component")
    targets = _targets(raw.get("next"), f"component {node_id} next")
    sources = _targets(raw.get("previous"), f"component {node_id} previous")
    inputs = raw.get("inputs")
    node = Node(
        id=node_id,
        name=_opt_str(raw.get("name"), "component name") or "",
        type=_opt_str(raw.get("type"), "component type") or "",
        inputs=inputs if isinstance(inputs, dict) else {},
        next_ids=_unique(target for target, _ in targets),
        previous_ids=_unique(source for source, _ in sources),
    )
    return node, [Edge(source=node_id, target=target, label=label) for target, label in targets]


def _targets(value: Any, what: str, label: str | None = None) -> list[tuple[str, str | None]]:
    """``next``/``previous`` as (node id, branch label) pairs, whatever shape QFlow used.

    Lists and mappings nest (a mapping's key labels the branch); walked with an explicit
    stack, in order, whatever the depth.
    """
    out: list[tuple[str, str | None]] = []
    stack: list[tuple[Any, str | None]] = [(value, label)]
    while stack:
        current, branch = stack.pop()
        if current is None or current == "":
            continue
        if isinstance(current, str):
            out.append((current, branch))
        elif isinstance(current, list):
            stack.extend((item, branch) for item in reversed(current))
        elif isinstance(current, dict):
            stack.extend((item, str(key)) for key, item in reversed(list(current.items())))
        else:
            raise QflowBadResponse(f"{what} should be a node id, a list or a mapping")
    return out


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _with_back_links(edges: list[Edge], nodes: list[Node]) -> list[Edge]:
    """Add edges known only from a node's ``previous``, so a half-filled graph still connects."""
    seen = {(edge.source, edge.target) for edge in edges}
    out = list(edges)
    for node in nodes:
        for source in node.previous_ids:
            if (source, node.id) not in seen:
                seen.add((source, node.id))
                out.append(Edge(source=source, target=node.id))
    return out


# --- executions and steps -----------------------------------------------------------


def _clean_list(value: Any) -> list[Any]:
    """Drop the junk QFlow leaves in category lists (``[null]``, ``[[]]``), flattening nested
    lists (in order, with an explicit stack)."""
    if value is None:
        return []
    if not isinstance(value, list):
        return [value] if value != "" else []
    out: list[Any] = []
    stack: list[Any] = [iter(value)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        elif item is not None and item != "":
            out.append(item)
    return out


_END = object()


def _categories(value: Any) -> dict[str, list[Any]]:
    if not isinstance(value, dict):
        return {}
    return {str(key): _clean_list(item) for key, item in value.items()}


def _linked_ids(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, dict):
            item = item.get("id") or item.get("execution") or item.get("executionId")
        text = _opt_str(item, "linked execution id")
        if text:
            out.append(text)
    return out


def _variables_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [f"{key}={item}" for key, item in value.items()]
    return [value]


def _find_steps(raw: Mapping[str, Any]) -> list[Step] | None:
    for key in _STEP_LIST_KEYS:
        value = raw.get(key)
        if isinstance(value, dict) and isinstance(value.get("items"), list):
            value = value["items"]
        if isinstance(value, list):
            return [parse_step(item) for item in value]
    for value in raw.values():
        if isinstance(value, list) and value and all(_looks_like_step(v) for v in value):
            return [parse_step(item) for item in value]
    return None


def _looks_like_step(value: Any) -> bool:
    return isinstance(value, dict) and "nodeId" in value


def _details(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    details = raw.get("details")
    return details if isinstance(details, dict) else {}


def parse_execution(body: Any) -> Execution:
    """An execution from a list's ``items`` or from ``GET /executions/{id}`` (``{"data": ...}``)."""
    raw = _unwrap(body, "execution")
    tags = _str_list(raw.get("tags"))
    end = raw.get("endDate")
    if end in (None, ""):
        end = _details(raw).get("executionEndDate")
    return Execution(
        id=_required_str(raw, ("id", "execution", "executionId"), "execution"),
        workflow_id=_opt_str(raw.get("workflow") or raw.get("workflowId"), "workflow"),
        status=_opt_str(raw.get("status"), "status") or "",
        source=_opt_str(raw.get("source"), "source"),
        execution_type=_opt_str(raw.get("executionType"), "executionType"),
        customer_id=_opt_str(raw.get("customerId"), "customerId"),
        created_at=parse_ms(raw.get("createdAt"), "createdAt"),
        updated_at=parse_ms(raw.get("updatedAt"), "updatedAt"),
        start_date=parse_ms(raw.get("startDate"), "startDate"),
        end_date=parse_ms(end, "endDate"),
        tags=tags,
        created_by=_created_by(tags, raw),
        categories=_categories(raw.get("categories")),
        variables=_variables_list(raw.get("variables")),
        parent_execution_id=_opt_str(raw.get("parentExecutionId"), "parentExecutionId"),
        linked_execution_ids=_linked_ids(
            raw.get("linkedExecutionIds", raw.get("linkedExecutions"))
        ),
        par_date_key=_opt_str(raw.get("parDateKey"), "parDateKey"),
        steps=_find_steps(raw),
        raw=raw,
    )


def _step_error(raw: Mapping[str, Any], status: str) -> str | None:
    for key in ("error", "errorMessage"):
        text = _message_text(raw.get(key))
        if text:
            return text
    details = _details(raw)
    if status.strip().lower() in _FAILED_STATUSES:
        text = _message_text(raw.get("message"))
        if text:
            return text
    return _message_text(details.get("error")) or _message_text(details.get("errorMessage"))


def _step_data(raw: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in raw:
            return parse_payload(raw[key])
    return None


def parse_step(body: Any) -> Step:
    """A step record (step list item, step details, or an execution's includeSteps entry)."""
    raw = _unwrap(body, "step")
    tags = _str_list(raw.get("tags"))
    status = _opt_str(raw.get("status"), "status") or ""
    end = raw.get("endDate")
    if end in (None, ""):
        end = _details(raw).get("executionEndDate")
    return Step(
        id=_opt_str(raw.get("id"), "step id"),
        execution_id=_opt_str(raw.get("execution") or raw.get("executionId"), "execution"),
        node_id=_required_str(raw, ("nodeId", "node_id"), "step"),
        node_type=_opt_str(raw.get("nodeType"), "nodeType"),
        status=status,
        event_order=_opt_int(raw.get("eventOrder"), "eventOrder"),
        created_at=parse_ms(raw.get("createdAt"), "createdAt"),
        updated_at=parse_ms(raw.get("updatedAt"), "updatedAt"),
        start_date=parse_ms(raw.get("startDate"), "startDate"),
        end_date=parse_ms(end, "endDate"),
        error=_step_error(raw, status),
        tags=tags,
        par_date_key=_opt_str(raw.get("parDateKey"), "parDateKey"),
        input=_step_data(raw, ("input", "inputs", "inputData")),
        output=_step_data(raw, ("output", "outputs", "outputData")),
        raw=raw,
    )


# --- lists, run, headers -------------------------------------------------------------

# (index in the page, the raw item, why it was refused)
BadItemHandler = Callable[[int, Any, QflowBadResponse], None]
_ON_BAD_ITEM: ContextVar[BadItemHandler | None] = ContextVar("qflow_on_bad_item", default=None)


@contextmanager
def skipping_bad_items(handler: BadItemHandler) -> Iterator[None]:
    """Within the block, list items that do not parse are handed to ``handler`` and skipped
    instead of failing the whole page (the sync uses this: one bad record must not stop it).
    """
    token = _ON_BAD_ITEM.set(handler)
    try:
        yield
    finally:
        _ON_BAD_ITEM.reset(token)


def _list_envelope(body: Any, what: str) -> tuple[list[Any], Any]:
    """``{"total": N, "items": [...]}``, possibly under ``data`` (at any depth), or a bare list."""
    if isinstance(body, list):
        return body, None
    body = _object(body, what)
    while body.get("items") is None and isinstance(body.get("data"), dict):
        body = body["data"]
    items = body.get("items")
    if items is None and isinstance(body.get("data"), list):
        items = body["data"]
    if items is None:
        items = []
    if not isinstance(items, list):
        raise QflowBadResponse(f"{what}: items should be a list, got {_type_name(items)}")
    return items, body.get("total")


def parse_page(
    body: Any,
    parse_item: Callable[[Any], T],
    *,
    what: str = "list",
    page_number: int | None = None,
    page_size: int | None = None,
    offset: int | None = None,
    on_bad_item: BadItemHandler | None = None,
) -> Page[T]:
    """One page of a list. An item that does not parse raises QflowBadResponse, unless a
    handler is given (``on_bad_item``, or one installed by :func:`skipping_bad_items`): then
    the item is left out of ``items`` and the handler gets (index, raw item, error); ``total``
    stays what QFlow said, so a caller can tell how many it could not read.
    """
    items_raw, total_raw = _list_envelope(body, what)
    on_bad_item = on_bad_item or _ON_BAD_ITEM.get()
    if on_bad_item is None:
        items = [parse_item(item) for item in items_raw]
    else:
        items = []
        for index, item in enumerate(items_raw):
            try:
                items.append(parse_item(item))
            except (QflowBadResponse, TypeError, ValueError) as exc:
                error = exc if isinstance(exc, QflowBadResponse) else QflowBadResponse(str(exc))
                on_bad_item(index, item, error)
    total = _opt_int(total_raw, f"{what} total")
    return Page(
        items=items,
        total=len(items) if total is None else total,
        page_number=page_number,
        page_size=page_size,
        offset=offset,
    )


def parse_steps(body: Any) -> list[Step]:
    items, _ = _list_envelope(body, "step list")
    return [parse_step(item) for item in items]


def parse_run_result(body: Any) -> RunResult:
    """Both documented run answers: ``{message, executionId}`` and ``{"data": {...envelope}}``."""
    body = _object(body, "run response")
    data = body.get("data", body)
    if not isinstance(data, dict):
        raise QflowBadResponse(f"run response: data should be an object, got {_type_name(data)}")
    execution_id = _opt_str(data.get("executionId"), "executionId")
    execution_id = execution_id or _opt_str(body.get("executionId"), "executionId")
    if not execution_id:
        raise QflowBadResponse("run response has no executionId")
    return RunResult(
        execution_id=execution_id,
        message=_opt_str(body.get("message"), "message")
        or _opt_str(data.get("message"), "message"),
        workflow_id=_opt_str(data.get("workflowId"), "workflowId"),
        raw=body,
    )


def _header_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value.strip()))
    except ValueError:
        return None  # advisory headers: a garbled one must not fail the call


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """The gateway's X-RateLimit-* / X-Concurrency-* headers, or None when none were sent."""
    lowered = {str(key).lower(): value for key, value in headers.items()}
    values = {name: _header_int(lowered.get(header)) for name, header in _RATE_HEADERS.items()}
    if all(value is None for value in values.values()):
        return None
    return RateLimitInfo(**values)


__all__ = [
    "parse_definition",
    "parse_execution",
    "parse_ms",
    "parse_page",
    "parse_payload",
    "parse_payload_text",
    "parse_rate_limit",
    "parse_run_result",
    "parse_step",
    "parse_steps",
    "parse_workflow",
    "skipping_bad_items",
]
