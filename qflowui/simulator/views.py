"""The simulated QFlow API: /auth/oidc and /qflowapi/v1/..., as in shared/QFLOW-API.md.

Every view is off (404) unless settings.QFLOW_SIMULATOR is true, checked per request. The
simulator checks its own bearer token, so views skip the site login and CSRF. A request goes:
call log -> latency -> injected fault -> rate limit -> token -> method -> handler.
"""

from __future__ import annotations

import functools
import hmac
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.views.decorators.csrf import csrf_exempt

from . import control, qql, tokens
from .config import RUNNING, Options
from .dataset import Execution, Workflow, execution_record, step_record
from .payloads import INPUT, OUTPUT, payload_text

Handler = Callable[..., HttpResponse]

_UUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
MAX_PAGE_SIZE = 200
_SYSTEM_STRING_VARIABLES = ("region", "resourceGroup", "project", "oci_region", "compartment")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(
        json.dumps(data, separators=(",", ":")), status=status, content_type="application/json"
    )


def _error(status: int, message: str) -> HttpResponse:
    return _json({"status": status, "error": HTTPStatus(status).phrase, "message": message}, status)


def _total(total: int, opts: Options) -> int | str:
    return str(total) if opts.total == "string" else total


# --- the request pipeline -------------------------------------------------------------------


def _simulated(*methods: str, api: bool = True) -> Callable[[Handler], Handler]:
    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
            if not settings.QFLOW_SIMULATOR:
                raise Http404("The QFlow simulator is off")
            return _serve(request, handler, kwargs, methods, api)

        return csrf_exempt(login_not_required(view))

    return decorate


def _serve(
    request: HttpRequest, handler: Handler, kwargs: dict, methods: tuple[str, ...], api: bool
) -> HttpResponse:
    opts = control.options()
    call = control.record_call(
        request.method or "GET", request.path, {k: request.GET.get(k, "") for k in request.GET}
    )
    running = control.enter()
    try:
        if opts.latency_ms:
            time.sleep(opts.latency_ms / 1000)
        response, rate = _respond(request, handler, kwargs, methods, api, opts)
    finally:
        control.leave()
    if api:
        rate = rate or control.rate_peek(control.clock(), opts)
        for name, value in (
            ("X-RateLimit-Limit", opts.rate_limit),
            ("X-RateLimit-Window-Sec", opts.rate_window_seconds),
            ("X-RateLimit-Remaining", rate.remaining),
            ("X-Concurrency-Limit-Limit", opts.concurrency_limit),
            ("X-Concurrency-Limit-Running", running),
        ):
            if name == "X-RateLimit-Remaining" and opts.rate_headers == "limit":
                continue
            response.setdefault(name, str(value))
    call.status = response.status_code
    return response


def _respond(
    request: HttpRequest,
    handler: Handler,
    kwargs: dict,
    methods: tuple[str, ...],
    api: bool,
    opts: Options,
) -> tuple[HttpResponse, control.RateState | None]:
    fault = control.take_fault(request.method or "GET", request.path, request.GET)
    if fault is not None and fault.kind == "latency":
        time.sleep(float(fault.params.get("seconds", 1.0)))
        fault = None
    if fault is not None and fault.kind in ("status", "expire_token", "redirect"):
        return _fault_response(fault.kind, fault.params), None
    if fault is not None and fault.kind == "malformed":
        if "body" in fault.params:
            text = str(fault.params["body"])
        elif request.method == "GET":
            real, _ = _normal(request, handler, kwargs, methods, api, opts)
            text = real.content[: max(1, len(real.content) // 2)].decode("utf-8", "replace")
        else:
            text = '{"message":"Workflow execution sta'
        return HttpResponse(text, content_type="application/json"), None

    response, rate = _normal(request, handler, kwargs, methods, api, opts)
    if fault is not None and fault.kind == "poison" and response.status_code == 200:
        body = control.poison(json.loads(response.content), fault.params)
        return _json(body), rate
    if fault is not None and fault.kind == "accept_then_status":
        return _fault_response("status", {"status": 500, **fault.params}), rate
    if fault is not None and fault.kind == "accept_then_delay":
        time.sleep(float(fault.params.get("seconds", 1.0)))
    return response, rate


def _fault_response(kind: str, params: dict[str, Any]) -> HttpResponse:
    if kind == "expire_token":
        return _json({"status": 401, "error": "Unauthorized", "message": "JWT expired"}, 401)
    if kind == "redirect":
        response = HttpResponse(status=int(params.get("status", 302)))
        response["Location"] = str(params.get("location", "/"))
        return response
    status = int(params.get("status", 500))
    body = params.get("body")
    if body is None:
        response = _error(status, "Simulated upstream fault")
    elif isinstance(body, str | bytes):
        response = HttpResponse(
            body, status=status, content_type=params.get("content_type", "text/plain")
        )
    else:
        response = _json(body, status)
    if status in (409, 429):
        response["X-RateLimit-ToWait-Sec"] = str(params.get("to_wait", 1))
    for name, value in (params.get("headers") or {}).items():
        response[name] = str(value)
    return response


def _normal(
    request: HttpRequest,
    handler: Handler,
    kwargs: dict,
    methods: tuple[str, ...],
    api: bool,
    opts: Options,
) -> tuple[HttpResponse, control.RateState | None]:
    rate = None
    if api:
        rate = control.rate_take(control.clock(), opts)
        if not rate.allowed:
            response = _error(429, "Too many requests: rate limit exceeded")
            response["X-RateLimit-ToWait-Sec"] = str(rate.to_wait)
            return response, rate
        verdict = _authenticate(request)
        if verdict != tokens.VALID:
            message = "JWT expired" if verdict == tokens.EXPIRED else "Not authenticated"
            return _json({"status": 401, "error": "Unauthorized", "message": message}, 401), rate
    if request.method not in methods:
        response = _error(405, f"Method {request.method} is not allowed here")
        response["Allow"] = ", ".join(methods)
        return response, rate
    try:
        return handler(request, opts, **kwargs), rate
    except ApiError as error:
        return _error(error.status, error.message), rate


def _authenticate(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "").strip()
    # The docs say "Bearer <token>", but one of their samples sends the bare token.
    token = header[7:].strip() if header[:7].lower() == "bearer " else header
    if not token:
        return tokens.INVALID
    fixed = getattr(settings, "QFLOW_TOKEN", "")
    if fixed and hmac.compare_digest(token.encode(), fixed.encode()):
        return tokens.VALID
    return tokens.check(token)


# --- parameters -----------------------------------------------------------------------------


def _int(query: QueryDict, name: str) -> int:
    try:
        return int(query[name])
    except ValueError:
        raise ApiError(400, f"{name} must be a whole number") from None


def _paging(query: QueryDict, opts: Options) -> tuple[int, int]:
    """(offset, pageSize). With paging=both and both given, pageNumber wins."""
    if not query.get("pageSize"):
        raise ApiError(400, "pageSize is mandatory")
    size = _int(query, "pageSize")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ApiError(400, f"pageSize must be between 1 and {MAX_PAGE_SIZE}")
    if opts.paging in ("both", "pageNumber") and query.get("pageNumber"):
        number = _int(query, "pageNumber")
        if number < 1:
            raise ApiError(400, "pageNumber starts from 1")
        return (number - 1) * size, size
    if opts.paging in ("both", "offset") and query.get("offset"):
        offset = _int(query, "offset")
        if offset < 0:
            raise ApiError(400, "offset must not be negative")
        return offset, size
    return 0, size


def _date(query: QueryDict, name: str) -> int | None:
    raw = (query.get(name) or "").strip().replace(" ", "+")  # an unencoded "+" arrives as " "
    if not raw:
        return None
    if raw.isdigit():
        return int(raw)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{name} must be an ISO-8601 date, e.g. 2025-07-05T00:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _bool(query: QueryDict, name: str) -> bool:
    raw = (query.get(name) or "").strip().lower()
    if raw in ("", "false", "0", "no"):
        return False
    if raw in ("true", "1", "yes"):
        return True
    raise ApiError(400, f"{name} must be true or false")


def _order(query: QueryDict, allowed: tuple[str, ...], default: str) -> tuple[str, bool]:
    """(field, descending)."""
    raw = (query.get("order") or default).strip()
    field = raw.lstrip("-")
    if field not in allowed:
        raise ApiError(
            400, f"order must be one of {', '.join(allowed)} (prefix - to sort descending)"
        )
    return field, raw.startswith("-")


def _query(query: QueryDict, fields: qql.FieldSpec) -> qql.Predicate | None:
    try:
        return qql.compile_query(query.get("query"), fields)
    except qql.QQLError as error:
        raise ApiError(400, f"Invalid query: {error}") from None


def _uuid(value: str, what: str) -> str:
    if not _UUID.match(value):
        raise ApiError(400, f"Provide a valid {what} ID. Ensure it is UUID.")
    return value.lower()


def _workflow(workflow_id: str) -> Workflow:
    wf = control.dataset().workflow(_uuid(workflow_id, "workflow"))
    if wf is None:
        raise ApiError(404, f"Workflow {workflow_id} not found")
    return wf


def _execution(execution_id: str, now: int) -> Execution:
    ex = control.find_execution(_uuid(execution_id, "execution"))
    # Data is kept 60 days, but the API serves the last 30 only.
    if ex is None or ex.start_ms < control.window_start(now):
        raise ApiError(404, f"Execution {execution_id} not found")
    return ex


# --- endpoints ------------------------------------------------------------------------------


@_simulated("POST", api=False)
def auth_token(request: HttpRequest, opts: Options) -> HttpResponse:
    """POST /auth/oidc: the raw JWT for the configured (or demo) client pair."""
    if settings.QFLOW_CLIENT_ID:
        expected = (settings.QFLOW_CLIENT_ID, settings.QFLOW_CLIENT_SECRET)
    else:
        expected = (settings.QFLOW_DEMO_CLIENT_ID, settings.QFLOW_DEMO_CLIENT_SECRET)
    client_id = request.headers.get("clientId", "")
    secret = request.headers.get("clientSecret", "")
    id_ok = hmac.compare_digest(client_id.encode(), expected[0].encode())
    secret_ok = hmac.compare_digest(secret.encode(), expected[1].encode())
    if not (id_ok and secret_ok):
        return _error(401, "Invalid clientId or clientSecret")
    token = tokens.issue(client_id, opts.token_ttl_seconds)
    return HttpResponse(token, content_type="text/plain; charset=utf-8")


_WORKFLOW_FIELDS: qql.FieldSpec = {
    "qflow.name": (lambda r: r["name"], "contains"),
    "name": (lambda r: r["name"], "contains"),
    "id": (lambda r: r["id"], "eq"),
    "category": (lambda r: r["category"], "eq"),
    "cloudProvider": (lambda r: r["cloudProviders"], "eq"),
    "deployed": (lambda r: str(r["deployed"]).lower(), "eq"),
}


@_simulated("GET")
def workflow_list(request: HttpRequest, opts: Options) -> HttpResponse:
    offset, size = _paging(request.GET, opts)
    start, end = _date(request.GET, "startAt"), _date(request.GET, "endAt")
    predicate = _query(request.GET, _WORKFLOW_FIELDS)
    field, descending = _order(request.GET, ("createdAt", "updatedAt", "name"), "-createdAt")
    rows = [
        w.record()
        for w in control.dataset().workflows
        if (start is None or w.created_ms >= start) and (end is None or w.created_ms <= end)
    ]
    if predicate:
        rows = [r for r in rows if predicate(r)]
    rows.sort(key=lambda r: (r[field], r["id"]), reverse=descending)
    return _json({"total": _total(len(rows), opts), "items": rows[offset : offset + size]})


@_simulated("GET")
def workflow_detail(request: HttpRequest, opts: Options, workflow_id: str) -> HttpResponse:
    return _json({"data": _workflow(workflow_id).record()})


@_simulated("POST")
def workflow_run(request: HttpRequest, opts: Options, workflow_id: str) -> HttpResponse:
    wf = _workflow(workflow_id)
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "Request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    run_input = body.get("input", {})
    variables = body.get("variables", {})
    if run_input is None:
        run_input = {}
    if variables is None:
        variables = {}
    if not isinstance(run_input, dict):
        raise ApiError(400, "input must be a JSON object")
    if not isinstance(variables, dict):
        raise ApiError(400, "variables must be a JSON object")
    connector = variables.get("connectorId")
    if connector is not None and (not isinstance(connector, str) or not _UUID.match(connector)):
        raise ApiError(400, "connectorId must be a connector UUID")
    for key in _SYSTEM_STRING_VARIABLES:
        if key in variables and not isinstance(variables[key], str):
            raise ApiError(400, f"{key} must be a string")
    run = control.start_run(wf, run_input, variables, opts)
    if opts.run_response == "data":
        return _json(
            {
                "data": {
                    "customerId": control.dataset().customer_id,
                    "workflowId": wf.id,
                    "input": run_input,
                    "executionId": run.id,
                    "forceRun": True,
                    "overrideVariables": run.overrides,
                    "source": "PUBLIC_API",
                }
            }
        )
    return _json({"message": "Workflow execution started", "executionId": run.id})


_EXECUTION_FIELDS: qql.FieldSpec = {
    "status": (lambda r: r["status"], "eq"),
    "source": (lambda r: r["source"], "eq"),
    "id": (lambda r: r["id"], "eq"),
    "execution": (lambda r: r["id"], "eq"),
    "executionType": (lambda r: "Simple", "eq"),
    "parentExecutionId": (lambda r: r["parentExecutionId"], "eq"),
    "tags": (lambda r: r["tags"], "contains"),
}
_EXECUTION_ORDER = ("createdAt", "startDate", "endDate", "updatedAt")


@_simulated("GET")
def execution_list(request: HttpRequest, opts: Options, workflow_id: str) -> HttpResponse:
    wf = _workflow(workflow_id)
    offset, size = _paging(request.GET, opts)
    now = control.now_ms()
    oldest = control.window_start(now)
    start, end = _date(request.GET, "startAt"), _date(request.GET, "endAt")
    if start is None:
        start = oldest
    elif start < oldest:
        if opts.window == "reject":
            raise ApiError(400, "startAt can only go as far back as 30 days from the present day")
        if opts.window == "empty":
            return _json({"total": _total(0, opts), "items": []})
        start = oldest
    predicate = _query(request.GET, _EXECUTION_FIELDS)
    field, descending = _order(request.GET, _EXECUTION_ORDER, "-createdAt")
    rows = [
        ex
        for ex in control.workflow_executions(wf.id)
        if ex.start_ms >= start and (end is None or ex.start_ms <= end)
    ]
    words = opts.words
    if predicate:
        rows = [
            ex
            for ex in rows
            if predicate(
                {
                    "status": words[ex.status_at(now)],
                    "source": ex.source,
                    "id": ex.id,
                    "parentExecutionId": ex.parent_id,
                    "tags": [f"created_by={ex.created_by}"],
                }
            )
        ]
    by_start = field in ("createdAt", "startDate")
    rows.sort(key=lambda e: (e.start_ms if by_start else e.end_ms, e.id), reverse=descending)
    customer = control.dataset().customer_id
    items = [execution_record(ex, now, words, customer) for ex in rows[offset : offset + size]]
    return _json({"total": _total(len(rows), opts), "items": items})


@_simulated("GET")
def execution_detail(request: HttpRequest, opts: Options, execution_id: str) -> HttpResponse:
    now = control.now_ms()
    ex = _execution(execution_id, now)
    customer = control.dataset().customer_id
    data = execution_record(ex, now, opts.words, customer)
    if _bool(request.GET, "includeSteps"):
        data[opts.steps_key] = [
            step_record(ex, item, opts.words, customer) for item in ex.steps_at(now)
        ]
    return _json({"data": data})


@_simulated("GET")
def step_list(request: HttpRequest, opts: Options, execution_id: str) -> HttpResponse:
    now = control.now_ms()
    ex = _execution(execution_id, now)
    include = _bool(request.GET, "includeData")
    start, end = _date(request.GET, "startAt"), _date(request.GET, "endAt")
    field, descending = _order(request.GET, ("eventOrder", "createdAt", "startDate"), "eventOrder")
    items = [
        item
        for item in ex.steps_at(now)
        if (start is None or item[0].start_ms >= start) and (end is None or item[0].start_ms <= end)
    ]
    if field == "eventOrder":
        items.sort(key=lambda i: i[0].order, reverse=descending)
    else:
        items.sort(key=lambda i: (i[0].start_ms, i[0].order), reverse=descending)
    ds = control.dataset()
    records = [step_record(ex, item, opts.words, ds.customer_id) for item in items]
    total = json.dumps(_total(len(records), opts))
    if not include:
        return _json({"total": _total(len(records), opts), "items": records})
    # Payloads are JSON text already (some are megabytes): splice them in, don't re-encode.
    parts = []
    for record, (step, status, _end) in zip(records, items, strict=True):
        head = json.dumps(record, separators=(",", ":"))[:-1]
        given = payload_text(ds, ex, step, INPUT, status)
        made = "null" if status == RUNNING else payload_text(ds, ex, step, OUTPUT, status)
        parts.append(f'{head},"input":{given},"output":{made}}}')
    body = '{"total":' + total + ',"items":[' + ",".join(parts) + "]}"
    return HttpResponse(body, content_type="application/json")


def _reached_step(execution_id: str, node_id: str, now: int) -> tuple[Execution, Any]:
    ex = _execution(execution_id, now)
    item = ex.step_at(node_id, now)
    if item is None:
        raise ApiError(404, f"No step for node {node_id} in execution {execution_id}")
    return ex, item


@_simulated("GET")
def step_detail(
    request: HttpRequest, opts: Options, execution_id: str, node_id: str
) -> HttpResponse:
    now = control.now_ms()
    ex, item = _reached_step(execution_id, node_id, now)
    return _json(step_record(ex, item, opts.words, control.dataset().customer_id))


def _step_payload(
    request: HttpRequest, execution_id: str, node_id: str, which: str
) -> HttpResponse:
    now = control.now_ms()
    ex, (step, status, _end) = _reached_step(execution_id, node_id, now)
    if which == OUTPUT and status == RUNNING:
        raise ApiError(404, f"Step {node_id} has no output yet: it is still running")
    text = payload_text(control.dataset(), ex, step, which, status)
    # parseJson=true: the JSON value itself; otherwise a JSON string holding the JSON text.
    body = text if _bool(request.GET, "parseJson") else json.dumps(text)
    return HttpResponse(body, content_type="application/json")


@_simulated("GET")
def step_input(
    request: HttpRequest, opts: Options, execution_id: str, node_id: str
) -> HttpResponse:
    return _step_payload(request, execution_id, node_id, INPUT)


@_simulated("GET")
def step_output(
    request: HttpRequest, opts: Options, execution_id: str, node_id: str
) -> HttpResponse:
    return _step_payload(request, execution_id, node_id, OUTPUT)


@_simulated(*_ALL_METHODS)
def not_found(request: HttpRequest, opts: Options) -> HttpResponse:
    raise ApiError(404, f"No QFlow API endpoint at {request.path}")
