"""Step payloads: masked, stored in the mirror and decoded once per process.

- A payload is masked before it is stored; cached forever once the execution is terminal
  (`payload_is_final`), fetched again while it runs.
- A payload not cached yet is fetched by a Celery task while the page polls; the state of
  that fetch (fetching, done, failed) lives in the shared cache, so every web process and
  worker sees it. Asking for a payload and polling it is `services.payload_request` /
  `services.payload_poll`; the task's job is `services.payload_fetch`.
- Stored as the masked JSON text orjson wrote (`StepPayload.body`, a text column) and, above
  jsontree.LARGE_LIMIT, with the head of its first view (`StepPayload.head`): the first view
  of a stored payload reads the head, never the body. Subtrees, tables, downloads and
  searches decode the body (orjson), once per process.
- Decoded payloads are kept per process (`PAYLOAD_MEMO_BYTES`), and one decode of a payload
  runs at a time per process.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from qflowui.core import jsonio
from qflowui.core.masking import mask_payload, mask_text, nothing_to_mask
from qflowui.executions import jsontree
from qflowui.executions.clients import ClientFactory, Lazy, page_client
from qflowui.mirror.fields import JsonText, JsonTextField
from qflowui.mirror.models import Execution, Step, StepPayload
from qflowui.qflow import QflowClient
from qflowui.qflow.errors import QflowError, QflowNotFound

logger = logging.getLogger(__name__)

# QFlow's failure to give a payload is remembered this long (a fetch state `failed`).
FAILURE_MEMO_SECONDS = 10
# A payload fetch claimed by a task: longer than the task's hard time limit (see tasks.py),
# so a claim outlives its task and a lost task is retried once the claim expires.
PAYLOAD_CLAIM_SECONDS = 90
PAYLOAD_DONE_SECONDS = 10
# Decoded payloads kept per process, counted in RAM as decoded (jsonio.sizeof: a 10 MB
# inventory weighs ~40 MB decoded, a 10 MB array of numbers ~60 MB). One payload above half
# of it is never kept.
PAYLOAD_MEMO_BYTES = 96 * 1024 * 1024
KINDS = (StepPayload.INPUT, StepPayload.OUTPUT)


class Payload:
    """A step's input or output as a view gets it.

    `present` False: not fetched (or the step never ran), `notice` says why. For a stored
    payload, `body` (the masked value) is decoded on first use, and `head` (a large payload's
    jsontree.Head, when stored) draws its first view without it.
    """

    def __init__(
        self,
        kind: str,
        body: Any = None,
        size: int = 0,
        fetched_at: datetime | None = None,
        present: bool = False,
        notice: str = "",
        upstream_calls: int = 0,
        *,
        row: StepPayload | None = None,
        head: jsontree.Head | None = None,
    ) -> None:
        self.kind = kind
        self._body = body
        self.size = size
        self.fetched_at = fetched_at
        self.present = present
        self.notice = notice
        self.upstream_calls = upstream_calls
        self.head = head
        self._stored = row  # the row it was read from (body deferred)
        self._pending = row is not None  # body not decoded yet

    @property
    def body(self) -> Any:
        if self._pending:
            self._body = _body(self._stored)
            self._pending = False
        return self._body

    def first_view(self) -> Any:
        """What the first view renders: the head of a large payload when there is one."""
        return self.head.root if self.head is not None else self.body

    def first_view_drawn_whole(self) -> None:
        """The head could not draw the first view (jsontree.HeadIncomplete): use the body."""
        logger.warning("payload %s: its head did not hold its first view", self.kind)
        self.head = None

    def lowered_text(self) -> str | None:
        """The stored JSON text (masked) in lower case, for the search's quick check
        (jsontree.may_match); None if not stored. Kept per process (PAYLOAD_TEXT_MEMO_BYTES)."""
        if self._stored is None or self._stored.pk is None:
            return None
        return _lowered_text(self._stored)

    def __repr__(self) -> str:
        return f"Payload({self.kind!r}, size={self.size}, present={self.present})"


def masked_size(body: Any) -> int:
    return len(jsonio.dumps(body))


def payload_is_final(execution: Execution, row: StepPayload) -> bool:
    """A payload fetched after the execution was known to be over never changes again."""
    if not execution.is_terminal:
        return False
    since = execution.steps_synced_at or execution.ended_at
    return since is not None and row.fetched_at >= since


def stored(execution: Execution, node_id: str, kind: str) -> StepPayload | None:
    return (
        StepPayload.objects.filter(execution=execution, node_id=node_id, kind=kind)
        .defer("body")
        .first()
    )


def from_row(row: StepPayload, notice: str = "", upstream_calls: int = 0) -> Payload:
    """The stored payload, its body decoded only when used (rows from `stored` defer it)."""
    head = None
    if row.size > jsontree.LARGE_LIMIT:
        head = jsontree.head_loads(row.head)
    payload = Payload(
        row.kind,
        None,
        row.size,
        row.fetched_at,
        True,
        notice,
        upstream_calls=upstream_calls,
        row=row,
        head=head,
    )
    if head is None and row.size > jsontree.LARGE_LIMIT:
        _head_backfill(row, payload)
    return payload


def _head_backfill(row: StepPayload, payload: Payload) -> None:
    """A large payload stored without a head (or one of other rules): made from the body and
    stored, so the next first view reads it."""
    try:
        head = jsontree.head_dumps(jsontree.head_of(payload.body))
    except Exception:  # the view renders from the body anyway
        logger.exception("payload %s: no head made", row.pk)
        return
    if row.pk is not None:
        StepPayload.objects.filter(pk=row.pk, fetched_at=row.fetched_at).update(head=head)


def step_payload(
    execution: Execution,
    step: Step | None,
    kind: str,
    *,
    prefer_cached: bool = False,
    client_factory: ClientFactory = page_client,
) -> Payload:
    """A step's input or output, masked: from the cache when final, else from QFlow now,
    within the page budget (the page's own fetch, when no task can do it).

    `prefer_cached` serves any stored copy (subtrees, searches and downloads of the payload
    the page is showing), fetching only when there is none.
    """
    if step is None:
        return Payload(kind, notice="This step did not run, so it has no data.")
    row = stored(execution, step.node_id, kind)
    if row is not None and (prefer_cached or payload_is_final(execution, row)):
        return from_row(row)
    state = fetch_state(execution.pk, step.node_id, kind)
    if state is not None and state["state"] == FAILED:
        return failed_payload(kind, state["message"], row)
    return fetch_and_store(execution, step.node_id, kind, Lazy(client_factory), row)


def fetch_and_store(
    execution: Execution, node_id: str, kind: str, client: Lazy, row: StepPayload | None
) -> Payload:
    """Ask QFlow for the payload and store it; a failure is remembered for a few seconds."""
    try:
        body = fetch_payload(client(), execution, node_id, kind)
    except QflowNotFound:
        if not execution.is_terminal:
            message = f"QFlow has no {kind} for this step yet."
            fetch_state_set(execution.pk, node_id, kind, FAILED, message=message)
            return Payload(kind, notice=message, upstream_calls=client.calls)
        body = None  # QFlow keeps no data for this step: the same as JSON null to an analyst
    except QflowError as exc:
        logger.warning("payload %s/%s/%s: %s", execution.pk, node_id, kind, mask_text(str(exc)))
        fetch_state_set(execution.pk, node_id, kind, FAILED, message=str(exc))
        return failed_payload(kind, str(exc), row, client.calls)
    saved = store_payload(execution, node_id, kind, body)
    return Payload(
        kind, saved.body, saved.size, saved.fetched_at, True, upstream_calls=client.calls
    )


def failed_payload(
    kind: str, message: str, row: StepPayload | None, upstream_calls: int = 0
) -> Payload:
    if message.startswith("QFlow has no"):
        return Payload(kind, notice=message, upstream_calls=upstream_calls)
    if row is not None:
        notice = f"QFlow could not be reached ({message}); showing the copy fetched earlier."
        return from_row(row, notice, upstream_calls)
    return Payload(
        kind, notice=f"QFlow could not be reached: {message}.", upstream_calls=upstream_calls
    )


# A payload not cached yet is fetched by a task while the page polls. The state of that fetch
# lives in the shared cache, so every web process and worker sees it:
#   fetching  a task was enqueued (one per payload: the first viewer's `cache.add` wins)
#   done      the task stored the payload
#   failed    QFlow said no or did not answer (remembered FAILURE_MEMO_SECONDS)
FETCHING, DONE, FAILED = "fetching", "done", "failed"


@dataclass
class Pending:
    """A payload a task is fetching; the page shows progress and polls."""

    kind: str
    since: float  # epoch seconds when the fetch was asked for

    @property
    def elapsed(self) -> int:
        return max(0, int(time.time() - self.since))


def fetch_key(execution_id: Any, node_id: str, kind: str) -> str:
    node = hashlib.sha256(node_id.encode()).hexdigest()[:32]
    return f"qflowui:payload:{execution_id}:{node}:{kind}"


def fetch_state(execution_id: Any, node_id: str, kind: str) -> dict[str, Any] | None:
    return cache.get(fetch_key(execution_id, node_id, kind))


def fetch_state_set(
    execution_id: Any, node_id: str, kind: str, state: str, *, since: float = 0.0, message: str = ""
) -> None:
    seconds = {FETCHING: PAYLOAD_CLAIM_SECONDS, DONE: PAYLOAD_DONE_SECONDS}.get(
        state, FAILURE_MEMO_SECONDS
    )
    value = {"state": state, "since": since or time.time(), "message": message}
    cache.set(fetch_key(execution_id, node_id, kind), value, seconds)


def fetch_payload(api: QflowClient, execution: Execution, node_id: str, kind: str) -> Any:
    if kind == StepPayload.INPUT:
        return api.get_step_input(str(execution.pk), node_id, parse_json=True)
    return api.get_step_output(str(execution.pk), node_id, parse_json=True)


def payload_masked(raw: Any) -> tuple[Any, int]:
    """The payload masked for storage, and the size in bytes of its JSON text."""
    body, text = payload_masked_text(raw)
    return body, _utf8_size(text)


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def payload_masked_text(raw: Any) -> tuple[Any, JsonText]:
    """The payload masked for storage, and its JSON text as stored (written once, by orjson:
    a tenth of the stdlib's time for 10 MB)."""
    data = jsonio.dumps(raw)
    text = data.decode()
    del data  # a 10 MB payload: one copy of its text at a time
    if nothing_to_mask(text):
        return raw, JsonText(text)
    del text
    body = mask_payload(raw)
    return body, JsonText(jsonio.dumps_text(body))


def store_payload(execution: Execution, node_id: str, kind: str, raw: Any) -> StepPayload:
    """Mask and store (insert or replace) a payload, with its head when it is large;
    returns the row as stored (its body decoded)."""
    body, text = payload_masked_text(raw)
    size = _utf8_size(text)
    head = jsontree.head_dumps(jsontree.head_of(body)) if size > jsontree.LARGE_LIMIT else None
    keys = {"execution": execution, "node_id": node_id, "kind": kind}
    values = {"size": size, "fetched_at": timezone.now(), "head": head}
    _upsert(StepPayload(**keys, body=text, **values))
    del text
    row = StepPayload(**keys, body=body, **values)
    _memo_put(row, body)
    return row


_UPSERT_FIELDS = ("execution", "node_id", "kind", "body", "size", "fetched_at", "head")


def _upsert(row: StepPayload) -> None:
    """Insert or replace a payload row in one statement, never read-then-write in one
    transaction: SQLite then waits for its lock (the input and output of a panel are fetched
    at the same time) instead of failing at once with "database is locked". The text is sent
    once.

    On PostgreSQL the statement's parameters are sent apart from it (server-side binding):
    Django's psycopg cursors write them into the SQL text (client-side binding), which for
    10 MB of JSON costs as much again as the write itself.
    """
    if connection.vendor != "postgresql":
        StepPayload.objects.bulk_create(
            [row],
            update_conflicts=True,
            unique_fields=["execution", "node_id", "kind"],
            update_fields=["body", "size", "fetched_at", "head"],
        )
        return
    import psycopg

    fields = [StepPayload._meta.get_field(name) for name in _UPSERT_FIELDS]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    updates = ", ".join(
        f"{connection.ops.quote_name(f.column)} = EXCLUDED.{connection.ops.quote_name(f.column)}"
        for f in fields[3:]
    )
    unique = ", ".join(connection.ops.quote_name(f.column) for f in fields[:3])
    table = connection.ops.quote_name(StepPayload._meta.db_table)
    marks = ", ".join(["%s"] * len(fields))
    sql = (
        f"INSERT INTO {table} ({columns}) VALUES ({marks}) "  # noqa: S608 - our own names
        f"ON CONFLICT ({unique}) DO UPDATE SET {updates}"
    )
    params = [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)


# Decoding a 10 MB payload from the database costs ~150-250 ms; subtree fetches, "show more"
# and searches of the payload an analyst is reading reuse the decoded copy.
_memo: OrderedDict[tuple[str, str, str, datetime], tuple[int, Any]] = OrderedDict()
_memo_lock = threading.Lock()


def _memo_key(row: StepPayload) -> tuple[str, str, str, datetime]:
    return (str(row.execution_id), row.node_id, row.kind, row.fetched_at)


def _memo_put(row: StepPayload, body: Any) -> None:
    if row.size > PAYLOAD_MEMO_BYTES // 2:  # decoded, it weighs more than its JSON text
        return
    weight = jsonio.sizeof(body)
    if weight > PAYLOAD_MEMO_BYTES // 2:
        return
    key = _memo_key(row)
    with _memo_lock:
        _memo[key] = (weight, body)
        _memo.move_to_end(key)
        while sum(size for size, _ in _memo.values()) > PAYLOAD_MEMO_BYTES:
            _memo.popitem(last=False)


# One decode of a payload at a time per process: the views that want a payload someone is
# decoding (8 analysts opening the same 10 MB output, each poll of a panel whose fetch just
# ended) wait for that copy instead of each holding one of their own (~40 MB apiece).
_decoding: dict[tuple[str, str, str, datetime], Future] = {}


def _body(row: StepPayload) -> Any:
    key = _memo_key(row)
    with _memo_lock:
        hit = _memo.get(key)
        if hit is not None:
            _memo.move_to_end(key)
            return hit[1]
        pending = _decoding.get(key)
        if pending is None:
            pending = _decoding[key] = Future()
            owner = True
        else:
            owner = False
    if not owner:
        try:
            return pending.result()
        except Exception:  # noqa: BLE001 - the owner's failure is its own: try once more here
            logger.debug("payload %s: decoding again after another view failed to", key)
    try:
        if "body" in row.get_deferred_fields():
            row.refresh_from_db(fields=["body"])
        _memo_put(row, row.body)
        if owner:
            pending.set_result(row.body)
        return row.body
    except BaseException as exc:
        if owner:
            pending.set_exception(exc)
        raise
    finally:
        if owner:
            with _memo_lock:
                _decoding.pop(key, None)


# The lower-cased JSON text of payloads being searched: a search the text rules out then
# costs ~10 ms for 10 MB instead of reading the text again (~50 ms) or walking (~0.6 s).
PAYLOAD_TEXT_MEMO_BYTES = 32 * 1024 * 1024
_texts: OrderedDict[tuple[str, str, str, datetime], str] = OrderedDict()


def _lowered_text(row: StepPayload) -> str | None:
    key = _memo_key(row)
    with _memo_lock:
        hit = _texts.get(key)
        if hit is not None:
            _texts.move_to_end(key)
            return hit
    text = (
        StepPayload.objects.filter(pk=row.pk)
        .values_list(JsonTextField.raw("body"), flat=True)
        .first()
    )
    if text is None:
        return None
    lowered = text.lower()
    del text
    if len(lowered) <= PAYLOAD_TEXT_MEMO_BYTES // 2:
        with _memo_lock:
            _texts[key] = lowered
            while sum(len(t) for t in _texts.values()) > PAYLOAD_TEXT_MEMO_BYTES:
                _texts.popitem(last=False)
    return lowered


def memo_clear() -> None:
    with _memo_lock:
        _memo.clear()
        _texts.clear()
