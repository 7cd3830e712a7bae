"""Two executions side by side (issue 12): `/executions/compare/?a=<id>&b=<id>`.

- `?a=&b=`: the comparison: where they part ways first, then the facts (status, times,
  source, who, categories, variables and the trigger's input, key by key), then their steps
  aligned by node id. Each node's input or output diff is a fragment (`compare/node/`)
  loaded when the user opens it: payloads come from the payload machinery (cached, or
  fetched by a task while the fragment polls "Fetching… N s"), the diff is computed here,
  bounded (qflowui/executions/compare.py).
- `?a=` alone: a picker: recent executions of a's workflow, and a field to paste an id.
- Neither: a form for two ids.

Bad input (not an id, unknown, a == b) is said on the page, never a 500. Executions of two
different workflows are compared, with a warning. Access is the data pages' (the
DataAccessMiddleware guards the executions namespace), as for the execution page.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseStopPolling

from qflowui.executions import compare as diffs
from qflowui.executions import presentation, services
from qflowui.executions.templatetags.qflow_format import duration
from qflowui.mirror import status as st
from qflowui.mirror.failures import first_line
from qflowui.mirror.models import Execution, Step

PICKER_SIZE = 30
PATH_CHARS = 300  # characters of a JSON pointer shown in a diff line
TRIGGER_NODE = "trigger"
KINDS = ("input", "output")
NODE_VIEWS = ("json", "keys")  # a payload's JSON diff, or its top-level keys (the run input)


# --- query strings ----------------------------------------------------------------------------


class ExecutionIdField(forms.CharField):
    """An execution id, pasted however (spaces, upper case, braces): a UUID or an error."""

    def clean(self, value: Any) -> str:
        text = (super().clean(value) or "").strip().strip("{}").strip()
        if not text:
            return ""
        try:
            return str(uuid.UUID(text))
        except ValueError:
            raise forms.ValidationError(
                f"“{text[:80]}” is not an execution id (a UUID such as "
                "0e71f117-648f-4ad2-a3a9-8f1b857a1b70)."
            ) from None


class CompareForm(forms.Form):
    a = ExecutionIdField(required=False, max_length=200)
    b = ExecutionIdField(required=False, max_length=200)


class NodeDiffForm(CompareForm):
    node = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=[(k, k) for k in KINDS])
    view = forms.ChoiceField(choices=[(v, v) for v in NODE_VIEWS], required=False)
    poll = forms.FloatField(required=False, min_value=0)


def compare_url(a: Any, b: Any = None) -> str:
    query = {"a": str(a)}
    if b:
        query["b"] = str(b)
    return reverse("executions:compare", query=query)


def node_diff_url(a: Any, b: Any, node: str, kind: str, view: str = "json", **extra: Any) -> str:
    query = {"a": str(a), "b": str(b), "node": node, "kind": kind}
    if view != "json":
        query["view"] = view
    query.update({k: v for k, v in extra.items() if v is not None})
    return reverse("executions:compare_node", query=query)


# --- loading ------------------------------------------------------------------------------------


class Refused(Exception):
    """The comparison cannot be shown; the message says why (and the status how)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _load(execution_id: str, side: str) -> services.Detail:
    try:
        return services.execution_load(execution_id)
    except services.ExecutionUnknown:
        raise Refused(
            f"Execution {side} ({execution_id}) is unknown: neither the dashboard nor QFlow "
            "knows it. QFlow serves executions of the last 30 days; the dashboard keeps "
            "those it has seen.",
            404,
        ) from None
    except services.ExecutionUnavailable as exc:
        raise Refused(
            f"Execution {side} ({execution_id}) is not in the dashboard's copy, and QFlow "
            f"could not be asked for it: {exc}",
            503,
        ) from None


def _pair(form: CompareForm) -> tuple[services.Detail, services.Detail]:
    """Both executions, or Refused with a message naming the one that is wrong."""
    if not form.is_valid():
        messages = [f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()]
        raise Refused(" ".join(messages), 400)
    a, b = form.cleaned_data["a"], form.cleaned_data["b"]
    if not a or not b:
        raise Refused("Give two executions to compare: ?a=<id>&b=<id>.", 400)
    if a == b:
        raise Refused("a and b are the same execution: pick another one to compare it with.", 400)
    return _load(a, "a"), _load(b, "b")


# --- the page -------------------------------------------------------------------------------------


@require_GET
def compare(request: HttpRequest) -> HttpResponse:
    form = CompareForm(request.GET)
    valid = form.is_valid()
    a = form.cleaned_data.get("a", "") if valid else ""
    b = form.cleaned_data.get("b", "") if valid else ""
    if valid and a and not b:
        return _picker(request, form, a)
    if valid and not a and not b:
        return render(request, "executions/compare.html", {"form": form, "start": True})
    try:
        da, db = _pair(form)
    except Refused as exc:
        context = {"form": form, "refused": exc.message, "start": True}
        return render(request, "executions/compare.html", context, status=exc.status)
    return render(request, "executions/compare.html", comparison_context(da, db))


def _picker(request: HttpRequest, form: CompareForm, a: str) -> HttpResponse:
    try:
        detail = _load(a, "a")
    except Refused as exc:
        context = {"form": form, "refused": exc.message, "start": True}
        return render(request, "executions/compare.html", context, status=exc.status)
    execution = detail.execution
    recent = list(
        Execution.objects.filter(workflow_id=execution.workflow_id)
        .exclude(pk=execution.pk)
        .only("id", "status", "status_class", "started_at", "duration_ms", "source", "region")
        .order_by("-started_at", "-id")[:PICKER_SIZE]
    )
    context = {
        "form": form,
        "picker": True,
        "a": execution,
        "workflow": detail.workflow,
        "recent": [(row, compare_url(execution.pk, row.pk)) for row in recent],
        "a_url": presentation.detail_url(execution.pk),
    }
    return render(request, "executions/compare.html", context)


@dataclass
class Side:
    """What the page shows of one execution."""

    label: str  # "a" or "b"
    execution: Execution
    workflow: Any
    url: str
    elapsed_ms: int | None
    categories: list[tuple[str, list[str]]]
    revision: str
    failed: Step | None
    failed_error: str
    failed_name: str = ""  # the failed step's name in the workflow definition


def _side(label: str, detail: services.Detail) -> Side:
    execution = detail.execution
    failed = services.failed_step(detail.steps)
    raw = execution.raw if isinstance(execution.raw, dict) else {}
    revision = next(
        (str(raw[k]) for k in ("revision", "workflowRevision") if isinstance(raw.get(k), str)),
        "",
    )
    elapsed = execution.duration_ms
    if elapsed is None:  # what QFlow did not say, from the times (none while it runs)
        elapsed = presentation.elapsed_ms(execution.started_at, execution.ended_at, False)
    return Side(
        label=label,
        execution=execution,
        workflow=detail.workflow,
        url=presentation.detail_url(execution.pk),
        elapsed_ms=elapsed,
        categories=presentation.categories_shown(execution.categories),
        revision=services.mask_free_text(revision),
        failed=failed,
        failed_error=services.mask_free_text(failed.error) if failed is not None else "",
        failed_name=_component_name(detail, failed.node_id) if failed is not None else "",
    )


def _component_name(detail: services.Detail, node_id: str) -> str:
    component = presentation.components_of(detail.workflow.definition).get(node_id) or {}
    name = component.get("name")
    return name if isinstance(name, str) else ""


def _step_sides(detail: services.Detail) -> dict[str, diffs.StepSide]:
    running = not detail.execution.is_terminal
    out = {}
    for step in detail.steps:
        out[step.node_id] = diffs.StepSide(
            status=step.status,
            status_class=step.status_class,
            event_order=step.event_order,
            elapsed_ms=presentation.elapsed_ms(
                step.started_at, step.ended_at, running and not step.ended_at
            ),
            error=services.mask_free_text(step.error or ""),
        )
    return out


def _names(*details: services.Detail) -> tuple[dict[str, tuple[str, str]], list[str]]:
    names: dict[str, tuple[str, str]] = {}
    order: list[str] = []
    for detail in details:
        for node, component in presentation.components_of(detail.workflow.definition).items():
            name = component.get("name") if isinstance(component.get("name"), str) else ""
            kind = component.get("type") if isinstance(component.get("type"), str) else ""
            if node not in names or not names[node][0]:
                names[node] = (name, kind)
                order.append(node)
        for step in detail.steps:
            if step.node_type and not names.get(step.node_id, ("", ""))[1]:
                names[step.node_id] = (names.get(step.node_id, ("", ""))[0], step.node_type)
    return names, order


def _start_delta(a: Execution, b: Execution) -> str:
    """When b started, said from a: "6 d 1 h after a", "40 s before a"."""
    ms = int((b.started_at - a.started_at).total_seconds() * 1000)
    if ms == 0:
        return "at the same time as a"
    return f"{duration(abs(ms))} {'after' if ms > 0 else 'before'} a"


@dataclass
class CategoryRow:
    label: str
    a: list[str]
    b: list[str]

    @property
    def differs(self) -> bool:
        return self.a != self.b


def _category_rows(a: Side, b: Side) -> list[CategoryRow]:
    left, right = dict(a.categories), dict(b.categories)
    labels = list(dict.fromkeys([*left, *right]))
    return [CategoryRow(label, left.get(label, []), right.get(label, [])) for label in labels]


def comparison_context(da: services.Detail, db: services.Detail) -> dict[str, Any]:
    a, b = _side("a", da), _side("b", db)
    names, _ = _names(da, db)
    rows = diffs.steps_align(_step_sides(da), _step_sides(db), names)
    diverge = diffs.first_divergence(rows)
    ea, eb = a.execution, b.execution
    variables = diffs.key_diff(
        diffs.variables_map([services.mask_free_text(str(v)) for v in ea.variables or []]),
        diffs.variables_map([services.mask_free_text(str(v)) for v in eb.variables or []]),
    )
    both_ran = {row.node_id for row in rows if row.a is not None and row.b is not None}
    step_rows = []
    for row in rows:
        diffable = row.node_id in both_ran and presentation.linkable(row.node_id)
        links = (
            {kind: node_diff_url(ea.pk, eb.pk, row.node_id, kind) for kind in KINDS}
            if diffable
            else {}
        )
        step_rows.append({"row": row, "links": links, "dom_id": f"node-diff-{row.index}"})
    diverge_links = next(
        (item["links"] for item in step_rows if diverge is not None and item["row"] is diverge), {}
    )
    trigger_ran = TRIGGER_NODE in both_ran
    return {
        "compared": True,
        "a": a,
        "b": b,
        "same_workflow": ea.workflow_id == eb.workflow_id,
        "revision_differs": a.revision != b.revision,
        "duration_delta": (
            b.elapsed_ms - a.elapsed_ms
            if a.elapsed_ms is not None and b.elapsed_ms is not None
            else None
        ),
        "start_delta": _start_delta(ea, eb),
        "categories": _category_rows(a, b),
        "variables": variables,
        "variables_changed": diffs.changed_count(variables),
        "input_url": node_diff_url(ea.pk, eb.pk, TRIGGER_NODE, "input", view="keys")
        if trigger_ran
        else "",
        "steps": step_rows,
        "diverge": diverge,
        "diverge_links": diverge_links,
        "diverge_error": first_line(
            (diverge.a.error if diverge and diverge.a else "")
            or (diverge.b.error if diverge and diverge.b else "")
        ),
        "only_a": [row for row in rows if row.only_in == "a"],
        "only_b": [row for row in rows if row.only_in == "b"],
        "notices": [f"a: {n}" for n in da.notices] + [f"b: {n}" for n in db.notices],
        "swap_url": compare_url(eb.pk, ea.pk),
        "pick_url": compare_url(ea.pk),
        "is_failure": {st.FAILED, st.TIMED_OUT},
    }


# --- a node's diff (lazy) --------------------------------------------------------------------


@require_GET
def compare_node(request: HttpRequest) -> HttpResponse:
    """One node's input or output in a and b, diffed; a fragment for htmx, else a page.

    Payloads not cached yet are fetched by the payload task while this fragment polls
    (`?poll=<when asked>`) every second; the answer with the diff stops the polling.
    """
    form = NodeDiffForm(request.GET)
    try:
        da, db = _pair(form)
    except Refused as exc:
        return _node_response(request, {"message": exc.message}, exc.status)
    data = form.cleaned_data
    node, kind, since = data["node"], data["kind"], data["poll"]
    view = data["view"] or "json"
    if not presentation.linkable(node):
        message = "This node id cannot be asked of QFlow, so its data cannot be compared."
        return _node_response(request, {"message": message}, 400)
    results = [_payload(d, node, kind, since) for d in (da, db)]
    pending = [r for r in results if isinstance(r, services.Pending)]
    names, _ = _names(da, db)
    context: dict[str, Any] = {
        "node": node,
        "node_name": names.get(node, ("", ""))[0],
        "kind": kind,
        "view": view,
        "a": da.execution,
        "b": db.execution,
        "compare_url": compare_url(da.execution.pk, db.execution.pk),
    }
    if pending:
        since_all = min(p.since for p in pending)
        context["pending"] = max(p.elapsed for p in pending)
        context["poll_url"] = node_diff_url(
            da.execution.pk, db.execution.pk, node, kind, view, poll=f"{since_all:.3f}"
        )
        context["reload_url"] = node_diff_url(da.execution.pk, db.execution.pk, node, kind, view)
        return _node_response(request, context, 200)
    context.update(_diff_context(da, db, node, kind, view, results))
    if request.htmx and since is not None:
        html = render_to_string("executions/_compare_node.html", context, request)
        return HttpResponseStopPolling(html)
    return _node_response(request, context, 200)


def _node_response(request: HttpRequest, context: dict[str, Any], status: int) -> HttpResponse:
    if request.htmx:
        # htmx swaps only 2xx answers: the fragment itself says what is wrong.
        return render(request, "executions/_compare_node.html", context)
    return render(request, "executions/compare_node.html", context, status=status)


def _payload(
    detail: services.Detail, node: str, kind: str, since: float | None
) -> services.Payload | services.Pending:
    step = next((s for s in detail.steps if s.node_id == node), None)
    if since is not None:
        return services.payload_poll(detail.execution, step, kind, since)
    result = services.payload_request(detail.execution, step, kind)  # inline: never None
    return result if result is not None else services.Payload(kind, notice="No data.")


def _diff_context(
    da: services.Detail,
    db: services.Detail,
    node: str,
    kind: str,
    view: str,
    results: list[services.Payload | services.Pending],
) -> dict[str, Any]:
    pa, pb = (r if isinstance(r, services.Payload) else services.Payload(kind) for r in results)
    out: dict[str, Any] = {
        "payloads": [("a", pa), ("b", pb)],
        "tree_urls": [presentation.tree_urls(d.execution.pk, node, kind).tree for d in (da, db)],
    }
    if not (pa.present and pb.present):
        return out
    if view == "keys":
        left, right = _run_input(pa.body, da.execution), _run_input(pb.body, db.execution)
        out["keys"] = diffs.key_diff(left, right)
        out["keys_changed"] = diffs.changed_count(out["keys"])
        out["keys_plain"] = not (isinstance(pa.body, dict) and isinstance(pb.body, dict))
        return out
    diff = diffs.json_diff(pa.body, pb.body)
    tree_a, tree_b = out["tree_urls"]
    out["diff"] = diff
    out["changes"] = [
        {
            "change": c,
            "path": _cut(c.shown_path),
            "a_url": f"{tree_a}?path={_quote(c.path)}" if _openable(c.a_kind) else "",
            "b_url": f"{tree_b}?path={_quote(c.path)}" if _openable(c.b_kind) else "",
        }
        for c in diff.changes
    ]
    out["unchanged"] = [
        {"item": u, "path": _cut(u.shown_path), "url": f"{tree_a}?path={_quote(u.path)}"}
        for u in diff.unchanged
    ]
    return out


def _openable(kind: str) -> bool:
    """An object or an array: worth a link to that value in the side's payload tree."""
    return kind.startswith(("object", "array"))


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="")


def _cut(text: str) -> str:
    return text if len(text) <= PATH_CHARS else text[:PATH_CHARS] + "…"


def _run_input(body: Any, execution: Execution) -> dict[str, Any]:
    """The trigger's input as keys, objects and key/value lists (overrideVariables) opened
    one level ("globalVariables.region"); its own execution id is left out (it always
    differs and says nothing)."""
    if not isinstance(body, dict):
        return {"(value)": body}
    own = str(execution.pk)
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in ("executionId", "execution") and value == own:
            continue
        inner = value if isinstance(value, dict) and value else _key_value_pairs(value)
        if inner is not None:
            out.update({f"{key}.{k}": v for k, v in inner.items()})
        else:
            out[str(key)] = value
    return out


def _key_value_pairs(value: Any) -> dict[str, Any] | None:
    """[{"key": "region", "value": ...}, ...] (overrideVariables) as a mapping, else None."""
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(i, dict) and isinstance(i.get("key"), str) for i in value):
        return None
    return {i["key"]: i.get("value") for i in value}
