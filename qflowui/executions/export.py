"""The export of an execution, and JSON downloads.

`execution_export` writes the execution, its steps and their masked payloads as one
JSON-ready document; `json_file` answers a value as a JSON file, streamed when big.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone

from qflowui.core import jsonio
from qflowui.core.masking import mask_free_text, mask_payload
from qflowui.executions.clients import ClientFactory, Lazy, page_client
from qflowui.executions.payloads import KINDS, fetch_payload, store_payload
from qflowui.mirror.models import StepPayload
from qflowui.qflow.errors import QflowError, QflowNotFound, QflowRateLimited, QflowUnavailable

if TYPE_CHECKING:
    from qflowui.executions.services import Detail

logger = logging.getLogger(__name__)

EXPORT_MAX_FETCHES = 60
# An export stops fetching payloads after this long (or at QFlow's first failure to answer).
EXPORT_FETCH_SECONDS = 10.0

# Downloads bigger than this (JSON bytes; decoded values weigh ~4 times more) are streamed.
STREAM_BYTES = 1_000_000


@dataclass
class PayloadSlot:
    """One step payload of an export: whether qflowui holds it (its body is read only when
    it is written, one at a time) and, when not, why."""

    node_id: str
    kind: str
    stored: bool
    note: str = ""


def payload_slots(
    detail: Detail, *, client_factory: ClientFactory = page_client
) -> list[PayloadSlot]:
    """Which payloads of the execution's steps qflowui holds, after fetching those not cached
    yet. For a terminal execution, payloads not cached yet are fetched (at most
    EXPORT_MAX_FETCHES, for at most EXPORT_FETCH_SECONDS, each call within the page budget,
    none after QFlow failed to answer once) and cached; a running one exports what is cached.
    No body is kept: each fetched one is stored and let go."""
    execution = detail.execution
    stored = set(StepPayload.objects.filter(execution=execution).values_list("node_id", "kind"))
    fetches = 0
    stop_fetching_at = time.monotonic() + EXPORT_FETCH_SECONDS
    unreachable = ""
    client = Lazy(client_factory)
    slots = []
    for step in detail.steps:
        for kind in KINDS:
            slot = PayloadSlot(step.node_id, kind, (step.node_id, kind) in stored)
            slots.append(slot)
            if slot.stored:
                continue
            if (
                execution.is_terminal
                and fetches < EXPORT_MAX_FETCHES
                and not unreachable
                and time.monotonic() < stop_fetching_at
            ):
                fetches += 1
                try:
                    raw = fetch_payload(client(), execution, step.node_id, kind)
                    store_payload(execution, step.node_id, kind, raw)
                    del raw
                    slot.stored = True
                except QflowNotFound:
                    store_payload(execution, step.node_id, kind, None)
                    slot.stored = True
                except (QflowUnavailable, QflowRateLimited) as exc:
                    # A slow or busy QFlow: the export does not wait on it again and again.
                    unreachable = str(exc)
                    slot.note = f"not fetched ({exc})"
                except QflowError as exc:
                    slot.note = f"not fetched ({exc})"
            elif unreachable:
                slot.note = "not fetched (QFlow did not answer)"
            elif execution.is_terminal:
                slot.note = "not fetched (the export's limit reached)"
            else:
                slot.note = "not fetched yet"
    return slots


def payload_body(detail: Detail, slot: PayloadSlot) -> Any:
    """The stored (masked) body of one payload: read when it is written, so an export holds
    one payload at a time."""
    bodies = StepPayload.objects.filter(
        execution=detail.execution, node_id=slot.node_id, kind=slot.kind
    ).values_list("body", flat=True)
    for body in bodies:
        return body
    return None


def export_document(detail: Detail, slots: list[PayloadSlot]) -> dict[str, Any]:
    """The execution and its steps as one JSON-ready document, without the payloads (the
    caller adds them: inline for Export JSON, as files for the evidence bundle)."""
    execution = detail.execution
    steps_out = [
        {
            "nodeId": step.node_id,
            "nodeType": step.node_type,
            "status": step.status,
            "eventOrder": step.event_order,
            "startDate": _iso(step.started_at),
            "endDate": _iso(step.ended_at),
            "error": mask_free_text(step.error) or None,
            "record": mask_payload(step.raw),
        }
        for step in detail.steps
    ]
    workflow = detail.workflow
    return {
        "exportedAt": _iso(timezone.now()),
        "execution": {
            "id": str(execution.pk),
            "status": execution.status,
            "terminal": execution.is_terminal,
            "workflow": {
                "id": str(workflow.pk),
                "name": workflow.name,
                "revision": workflow.revision,
            },
            "source": execution.source,
            "executionType": execution.execution_type,
            "startDate": _iso(execution.started_at),
            "endDate": _iso(execution.ended_at),
            "durationMs": execution.duration_ms,
            "triggeredBy": execution.triggered_by,
            "categories": mask_payload(execution.categories),
            "variables": mask_payload(execution.variables),
            "tags": mask_payload(execution.tags),
            "parentExecutionId": _str(execution.parent_execution_id),
            "linkedExecutionIds": execution.linked_execution_ids,
            "record": mask_payload(execution.raw),
        },
        "steps": steps_out,
        "notes": [f"{slot.node_id} {slot.kind}: {slot.note}" for slot in slots if slot.note],
    }


def execution_export(
    detail: Detail, *, client_factory: ClientFactory = page_client
) -> dict[str, Any]:
    """The execution, its steps and their masked payloads as one JSON-ready document (Export
    JSON): `export_document` with each step's `input` and `output` inline."""
    slots = payload_slots(detail, client_factory=client_factory)
    document = export_document(detail, slots)
    by_step = {(slot.node_id, slot.kind): slot for slot in slots}
    bodies = {
        (p.node_id, p.kind): p.body
        for p in StepPayload.objects.filter(execution=detail.execution).only(
            "node_id", "kind", "body"
        )
    }
    for step, record in zip(detail.steps, document["steps"], strict=True):
        for kind in KINDS:
            slot = by_step[(step.node_id, kind)]
            record[kind] = bodies.get((step.node_id, kind)) if slot.stored else None
    return document


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _str(value: Any) -> str | None:
    return str(value) if value is not None else None


_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def filename(*parts: str) -> str:
    return "-".join(_FILENAME_UNSAFE.sub("_", p)[:80] for p in parts if p) + ".json"


def json_file(value: Any, *, indent: bool, stream: bool) -> HttpResponse:
    """`value` as a JSON response, written by orjson: streamed in pieces when big, so its
    text is never held whole; else one bytes object (no str copy on the way out). 422 when
    nested too deep to write (values stored before qflowui bounded depth)."""
    content_type = "application/json; charset=utf-8"
    if stream:
        return StreamingHttpResponse(_pieces(value, indent), content_type=content_type)
    try:
        try:
            text = jsonio.dumps(value, indent=indent)
        except jsonio.JsonTooDeep:
            # A document (the export) holding values each within the bound, together deeper.
            text = b"".join(jsonio.iter_dumps(value, indent=indent))
        return HttpResponse(text, content_type=content_type)
    except ValueError as exc:
        return HttpResponse(
            f"qflowui cannot write this value as JSON: {exc}.",
            status=422,
            content_type="text/plain; charset=utf-8",
        )


def _pieces(value: Any, indent: bool) -> Iterator[bytes]:
    try:
        yield from jsonio.iter_dumps(value, indent=indent)
    except ValueError:
        # Only a value stored before qflowui bounded depth can get here; the file ends
        # without its closing brackets, so nobody takes it for a complete document.
        logger.exception("a JSON download could not be written to the end")
