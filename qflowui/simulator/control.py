"""Runtime control of the simulator, for tests and demos. Shared by every process serving it.

    from qflowui.simulator import control
    control.reset()                          # back to settings; faults, runs, calls, rates cleared
    control.configure(total="string")        # change variants now (also a context manager)
    control.inject("status", path=r"/executions$", status=503, times=2)
    control.calls                            # the requests received, oldest first
    control.dataset()                        # the demo data set, to compute expectations
    control.executions(workflow_id)          # executions as the API renders them now
    control.clock = fake_time                # the simulator's clock (seconds), for benches

Fault kinds (`inject(kind, *, path=regex, method=None, query=None, times=1, **params)`;
times=None: forever; `query={"pageNumber": "2"}`: only requests with these query values, e.g.
"the 2nd page of one workflow's execution list"):
  status              answer `status` (default 500) with optional `headers` and `body`
  latency             sleep `seconds`, then answer normally
  expire_token        401 "JWT expired", whatever the token
  malformed           200 with a truncated, non-JSON body (or the raw text in `body`)
  redirect            `status` (default 302) to `location` (default "/")
  accept_then_status  run the request (POST /run creates the execution), answer `status` (500)
  accept_then_delay   run the request, sleep `seconds`, then answer normally
  poison              answer normally, but with malformed records: in a list, the items from
                      index `at` (default 0) get one poison each, in the order of `kinds`
                      (default all of POISONS but "shape"); a single `{"data": {...}}` record
                      gets the first. `total` is unchanged: the records are QFlow's, unreadable.

The state (variants set by configure(), faults, POST /run executions, rate counters, the
call log) lives in Django's "simulator" cache (Redis, or files in var/cache), so that the
several web processes of `make run` serve one simulator. The demo data set itself is built
in each process from the seed, at one moment ("anchor") they share through the same cache.
"""

from __future__ import annotations

import bisect
import copy
import math
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from . import config
from .config import FAILED, SUCCESS, Options
from .dataset import (
    DAY_MS,
    WINDOW_DAYS,
    Dataset,
    Execution,
    Workflow,
    build_fleet,
    execution_record,
    make_run,
)
from .dataset import build as build_dataset

# The simulator's clock (seconds since the epoch): what "now" is for its data, its rate
# window and its runs. A bench replaces it to run simulated hours in minutes.
clock: Callable[[], float] = time.time

FAULT_KINDS = (
    "status",
    "latency",
    "expire_token",
    "malformed",
    "redirect",
    "accept_then_status",
    "accept_then_delay",
    "poison",
)
# What a `poison` fault does to a record, by name (markup where ids belong on purpose).
POISONS: dict[str, Any] = {
    "id": {"id": "not-a-uuid", "execution": "not-a-uuid"},
    "date": {"createdAt": "yesterday"},
    "parent": {"parentExecutionId": "<script>alert('parent')</script>"},
    "linked": {"linkedExecutionIds": [{"evil": "<img src=x onerror=alert('linked')>"}]},
    "status": {"status": 3},
    "shape": "<script>alert('not an object')</script>",  # the whole record
}
DEFAULT_POISONS = ("id", "date", "parent", "linked", "status")


class Call:
    """One request the simulator received; `status` is set (and stored) once it answered."""

    __slots__ = ("_index", "_status", "method", "path", "query", "time")

    def __init__(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        time: float,
        status: int | None = None,
    ) -> None:
        self.method, self.path, self.query, self.time = method, path, query, time
        self._status = status
        self._index = 0  # its place in the shared call log, once recorded

    @property
    def status(self) -> int | None:
        return self._status

    @status.setter
    def status(self, value: int | None) -> None:
        self._status = value
        if self._index:
            _store().set(_call_key(self._index), (_generation(), self._index, self), KEEP_SECONDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Call):
            return NotImplemented
        mine = (self.method, self.path, self.query, self.time, self._status)
        return mine == (other.method, other.path, other.query, other.time, other._status)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Call({self.method} {self.path} -> {self._status})"


@dataclass
class Fault:
    kind: str
    path: re.Pattern[str] | None
    method: str | None
    times: int | None  # None: every matching request
    params: dict[str, Any] = field(default_factory=dict)
    hits: int = 0
    query: dict[str, str] | None = None  # query parameters that must have these values
    key: str = ""  # names its hit counter in the shared store

    def matches(self, method: str, path: str, query: Any = None) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self.query:
            given = query or {}
            if any(str(given.get(key, "")) != value for key, value in self.query.items()):
                return False
        return self.path is None or bool(self.path.search(path))


@dataclass(frozen=True)
class RateState:
    allowed: bool
    remaining: int
    to_wait: int


# --- the shared state -------------------------------------------------------------------------

CALLS_KEPT = 2000  # the call log keeps the last this many requests
KEEP_SECONDS = 7 * 24 * 3600  # the state of a simulator nobody uses for a week is forgotten
_LOCK_SECONDS = 5.0  # a holder that died frees the lock after this long
ANCHOR_SECONDS = 7 * 24 * 3600

_lock = threading.RLock()  # this process's threads; _locked() adds the other processes
_datasets: dict[tuple, Dataset] = {}


def _store() -> Any:
    return caches["simulator"]


@contextmanager
def _locked() -> Iterator[None]:
    """One writer at a time across threads and processes (read-modify-write of a key)."""
    with _lock:
        token = uuid.uuid4().hex
        deadline = time.monotonic() + _LOCK_SECONDS
        while not _store().add("lock", token, _LOCK_SECONDS):
            if time.monotonic() > deadline:
                break  # a stuck lock must not stall the simulator: go on without it
            time.sleep(0.002)
        try:
            yield
        finally:
            if _store().get("lock") == token:
                _store().delete("lock")


def _generation() -> str:
    """Changes at every reset(): call-log entries of an earlier generation are ignored."""
    return _store().get("generation") or ""


def _call_key(index: int) -> str:
    return f"call:{index % CALLS_KEPT}"


def _counter(key: str, delta: int) -> int:
    """Add `delta` to a shared counter and return it (atomic on Redis; on files, atomic
    between the threads of one process, which is what tests and a demo need)."""
    store = _store()
    with _lock:
        if not isinstance(store, RedisCache):
            # Django's incr() on files would also cut the key's lifetime to the default 300 s.
            value = int(store.get(key) or 0) + delta
            store.set(key, value, KEEP_SECONDS)
            return value
        store.add(key, 0, KEEP_SECONDS)
        try:
            return int(store.incr(key, delta))
        except ValueError:  # vanished between add and incr (a reset): start again
            store.set(key, delta, KEEP_SECONDS)
            return delta


def __getattr__(name: str) -> Any:
    # `control.calls`: the shared call log, read now (oldest first).
    if name == "calls":
        return _calls()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _calls() -> list[Call]:
    last = int(_store().get("calls:n") or 0)
    first = max(1, last - CALLS_KEPT + 1)
    if last < first:
        return []
    generation = _generation()
    found = _store().get_many([_call_key(i) for i in range(first, last + 1)])
    out = []
    for index in range(first, last + 1):
        entry = found.get(_call_key(index))
        if entry is not None and entry[0] == generation and entry[1] == index:
            out.append(entry[2])
    return out


# --- configuration --------------------------------------------------------------------------


def options() -> Options:
    """The options in force: settings.QFLOW_SIMULATOR_OPTIONS overlaid with configure()."""
    base = config.parse(getattr(settings, "QFLOW_SIMULATOR_OPTIONS", "") or "")
    overrides = _store().get("overrides") or {}
    return config.build(base, overrides) if overrides else base


class _Configured:
    """Returned by configure(); as a context manager it restores the previous variants."""

    def __init__(self, previous: dict[str, Any]) -> None:
        self._previous = previous

    def __enter__(self) -> Options:
        return options()

    def __exit__(self, *exc: object) -> None:
        _store().set("overrides", dict(self._previous), KEEP_SECONDS)


def configure(**changes: Any) -> _Configured:
    """Change variants now, e.g. configure(run_response="data", rate_limit=3)."""
    coerced = {key: config.coerce(key, value) for key, value in changes.items()}
    with _locked():
        previous = dict(_store().get("overrides") or {})
        merged = {**previous, **coerced}
        config.build(config.Options(), merged)  # cross-field checks
        _store().set("overrides", merged, KEEP_SECONDS)
    return _Configured(previous)


def reset() -> None:
    """Variants back to settings; faults, POST /run executions, calls and rate counters cleared."""
    with _locked():
        for run_id in _store().get("runs") or []:
            _store().delete(f"run:{run_id}")
        for fault in _store().get("faults") or []:
            _store().delete(f"fault:{fault.key}:hits")
        _store().delete_many(["overrides", "faults", "runs", "rate", "running"])
        _store().set("generation", uuid.uuid4().hex, KEEP_SECONDS)
        _store().set("calls:n", 0, KEEP_SECONDS)


# --- faults and the call log ----------------------------------------------------------------


def inject(
    kind: str,
    *,
    path: str | None = None,
    method: str | None = None,
    times: int | None = 1,
    query: dict[str, Any] | None = None,
    **params: Any,
) -> Fault:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(FAULT_KINDS)}")
    if kind == "poison":
        unknown = set(_poison_kinds(params)) - set(POISONS)
        if unknown:
            raise ValueError(f"unknown poison {sorted(unknown)}; use some of {', '.join(POISONS)}")
    wanted = {str(k): str(v) for k, v in (query or {}).items()} or None
    fault = Fault(kind, re.compile(path) if path else None, method, times, params, query=wanted)
    fault.key = uuid.uuid4().hex
    with _locked():
        _store().set(f"fault:{fault.key}:hits", 0, KEEP_SECONDS)
        _store().set("faults", [*(_store().get("faults") or []), fault], KEEP_SECONDS)
    return fault


def take_fault(method: str, path: str, query: Any = None) -> Fault | None:
    """The first fault matching this request, counted as used once.

    Each fault's hits are counted atomically in the shared store, so `times=2` is two
    requests in all, whichever processes serve them.
    """
    for fault in _store().get("faults") or []:
        if not fault.matches(method, path, query):
            continue
        fault.hits = _counter(f"fault:{fault.key}:hits", 1)
        if fault.times is not None and fault.hits > fault.times:
            continue  # used up by another request a moment ago
        if fault.times is not None and fault.hits >= fault.times:
            with _locked():
                left = [f for f in _store().get("faults") or [] if f.key != fault.key]
                _store().set("faults", left, KEEP_SECONDS)
                _store().delete(f"fault:{fault.key}:hits")
        return fault
    return None


def _poison_kinds(params: dict[str, Any]) -> list[str]:
    kinds = params.get("kinds", DEFAULT_POISONS)
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    return list(kinds)


def poison(body: Any, params: dict[str, Any]) -> Any:
    """The answer `body` with malformed records, as a `poison` fault asks (see the top)."""
    kinds = _poison_kinds(params)

    def spoil(record: Any, kind: str) -> Any:
        change = POISONS[kind]
        if not isinstance(change, dict) or not isinstance(record, dict):
            return change
        return {**record, **copy.deepcopy(change)}

    if isinstance(body, dict) and isinstance(body.get("items"), list):
        items = list(body["items"])
        start = int(params.get("at", 0))
        for offset, kind in enumerate(kinds):
            if start + offset < len(items):
                items[start + offset] = spoil(items[start + offset], kind)
        return {**body, "items": items}
    if isinstance(body, dict) and isinstance(body.get("data"), dict) and kinds:
        return {**body, "data": spoil(body["data"], kinds[0])}
    return body


def record_call(method: str, path: str, query: dict[str, str]) -> Call:
    call = Call(method, path, query, clock())
    call._index = _counter("calls:n", 1)
    _store().set(_call_key(call._index), (_generation(), call._index, call), KEEP_SECONDS)
    return call


# --- rate and concurrency -------------------------------------------------------------------


def rate_take(now: float, opts: Options) -> RateState:
    """Count one call against the rolling window, unless the window is full."""
    with _locked():
        rate = [t for t in _store().get("rate") or [] if t > now - opts.rate_window_seconds]
        if len(rate) >= opts.rate_limit:
            _store().set("rate", rate, KEEP_SECONDS)
            wait = rate[0] + opts.rate_window_seconds - now
            return RateState(False, 0, max(1, math.ceil(wait)))
        rate.append(now)
        _store().set("rate", rate, KEEP_SECONDS)
        return RateState(True, opts.rate_limit - len(rate), 0)


def forget_rate() -> None:
    """Start a fresh rate window (the calls so far no longer count)."""
    with _locked():
        _store().delete("rate")


def rate_peek(now: float, opts: Options) -> RateState:
    used = sum(1 for t in _store().get("rate") or [] if t > now - opts.rate_window_seconds)
    return RateState(used < opts.rate_limit, max(0, opts.rate_limit - used), 0)


def enter() -> int:
    return _counter("running", 1)


def leave() -> None:
    if _counter("running", -1) < 0:
        _store().set("running", 0, KEEP_SECONDS)


# --- data ---------------------------------------------------------------------------------


def now_ms() -> int:
    return int(clock() * 1000)


def window_start(at_ms: int | None = None) -> int:
    """The oldest createdAt the API serves: midnight UTC, 30 days before today."""
    at = now_ms() if at_ms is None else at_ms
    return at // DAY_MS * DAY_MS - WINDOW_DAYS * DAY_MS


def dataset() -> Dataset:
    """The data set for settings.QFLOW_SIMULATOR_SEED (the demo one, or the fleet the
    options ask for), built once per process, seed and fleet."""
    seed = int(settings.QFLOW_SIMULATOR_SEED)
    fleet = options().fleet
    key = (seed, fleet)
    found = _datasets.get(key)
    if found is None:
        with _lock:
            found = _datasets.get(key)
            if found is None:
                anchor = _anchor_ms(seed)
                if fleet is None:
                    found = build_dataset(seed, anchor)
                else:
                    workflows, active, minutes, per_month, days = fleet
                    found = build_fleet(
                        seed,
                        anchor,
                        workflows=workflows,
                        active=active,
                        active_minutes=minutes,
                        rare_per_month=per_month,
                        days=days,
                    )
                _datasets[key] = found
    return found


def _anchor_ms(seed: int) -> int:
    """When the data set ends, shared by the processes one server started (gunicorn's
    workers have one parent), so they place every execution at the same moment; a restart
    (a new parent) places the data afresh."""
    key = f"anchor:{seed}:{os.getppid()}"
    _store().add(key, now_ms(), ANCHOR_SECONDS)
    return int(_store().get(key) or now_ms())


def _runs(run_ids: list[str] | None = None) -> list[Execution]:
    ids = _store().get("runs") or [] if run_ids is None else run_ids
    found = _store().get_many([f"run:{run_id}" for run_id in ids])
    return [found[key] for key in (f"run:{run_id}" for run_id in ids) if key in found]


def find_execution(execution_id: str) -> Execution | None:
    """The execution, if it exists by now (a fleet's later executions do not yet)."""
    found = _store().get(f"run:{execution_id}") or dataset().execution(execution_id)
    return found if found is not None and found.start_ms <= now_ms() else None


def workflow_executions(workflow_id: str) -> list[Execution]:
    """Data set executions plus POST /run ones of a workflow that exist by now, newest first."""
    runs = [r for r in _runs() if r.workflow_id == workflow_id]
    found = dataset().by_workflow.get(workflow_id, [])
    now = now_ms()
    if found and found[0].start_ms > now:  # a fleet's executions still to come
        found = found[bisect.bisect_left(found, -now, key=lambda e: -e.start_ms) :]
    if not runs:
        return found
    return sorted([*found, *runs], key=lambda e: (e.start_ms, e.id), reverse=True)


def executions(workflow_id: str | None = None) -> list[dict[str, Any]]:
    """Every execution (all 60 days, runs included) as the API renders it now, newest first."""
    ds = dataset()
    ids = [workflow_id] if workflow_id else [w.id for w in ds.workflows]
    rows = [ex for wid in ids for ex in workflow_executions(wid)]
    rows.sort(key=lambda e: (e.start_ms, e.id), reverse=True)
    at, words = now_ms(), options().words
    return [execution_record(ex, at, words, ds.customer_id) for ex in rows]


def start_run(
    wf: Workflow, run_input: dict[str, Any], variables: dict[str, Any], opts: Options
) -> Execution:
    """Create an execution for POST /run: Running now, finishing within the configured range."""
    execution_id = str(uuid.uuid4())
    rng = random.Random(execution_id)
    if opts.run_status == "random":
        final = SUCCESS if rng.random() < 0.85 else FAILED
    else:
        final = SUCCESS if opts.run_status == "success" else FAILED
    duration = rng.uniform(opts.run_min_seconds, opts.run_max_seconds)
    run = make_run(
        dataset(),
        wf,
        execution_id=execution_id,
        now_ms=now_ms(),
        run_input=run_input,
        variables=variables,
        duration_ms=max(1, int(duration * 1000)),
        final=final,
    )
    with _locked():
        _store().set(f"run:{run.id}", run, KEEP_SECONDS)
        _store().set("runs", [*(_store().get("runs") or []), run.id], KEEP_SECONDS)
    return run
