"""Runtime control of the simulator, for tests and demos. Process-global and thread-safe.

    from qflowui.simulator import control
    control.reset()                          # back to settings; faults, runs, calls, rates cleared
    control.configure(total="string")        # change variants now (also a context manager)
    control.inject("status", path=r"/executions$", status=503, times=2)
    control.calls                            # the requests received, oldest first
    control.dataset()                        # the demo data set, to compute expectations
    control.executions(workflow_id)          # executions as the API renders them now

Fault kinds (`inject(kind, *, path=regex, method=None, times=1, **params)`; times=None: forever):
  status              answer `status` (default 500) with optional `headers` and `body`
  latency             sleep `seconds`, then answer normally
  expire_token        401 "JWT expired", whatever the token
  malformed           200 with a truncated, non-JSON body (or the raw text in `body`)
  redirect            `status` (default 302) to `location` (default "/")
  accept_then_status  run the request (POST /run creates the execution), answer `status` (500)
  accept_then_delay   run the request, sleep `seconds`, then answer normally
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from . import config
from .config import FAILED, SUCCESS, Options
from .dataset import DAY_MS, WINDOW_DAYS, Dataset, Execution, Workflow, execution_record, make_run
from .dataset import build as build_dataset

FAULT_KINDS = (
    "status",
    "latency",
    "expire_token",
    "malformed",
    "redirect",
    "accept_then_status",
    "accept_then_delay",
)


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    time: float
    status: int | None = None


@dataclass
class Fault:
    kind: str
    path: re.Pattern[str] | None
    method: str | None
    times: int | None  # None: every matching request
    params: dict[str, Any] = field(default_factory=dict)
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return self.path is None or bool(self.path.search(path))


@dataclass(frozen=True)
class RateState:
    allowed: bool
    remaining: int
    to_wait: int


_lock = threading.RLock()
_overrides: dict[str, Any] = {}
_faults: list[Fault] = []
_runs: dict[str, Execution] = {}
_rate: deque[float] = deque()
_running = 0
_datasets: dict[int, Dataset] = {}
calls: list[Call] = []


# --- configuration --------------------------------------------------------------------------


def options() -> Options:
    """The options in force: settings.QFLOW_SIMULATOR_OPTIONS overlaid with configure()."""
    base = config.parse(getattr(settings, "QFLOW_SIMULATOR_OPTIONS", "") or "")
    with _lock:
        overrides = dict(_overrides)
    return config.build(base, overrides) if overrides else base


class _Configured:
    """Returned by configure(); as a context manager it restores the previous variants."""

    def __init__(self, previous: dict[str, Any]) -> None:
        self._previous = previous

    def __enter__(self) -> Options:
        return options()

    def __exit__(self, *exc: object) -> None:
        with _lock:
            _overrides.clear()
            _overrides.update(self._previous)


def configure(**changes: Any) -> _Configured:
    """Change variants now, e.g. configure(run_response="data", rate_limit=3)."""
    coerced = {key: config.coerce(key, value) for key, value in changes.items()}
    with _lock:
        previous = dict(_overrides)
        merged = {**_overrides, **coerced}
        config.build(config.Options(), merged)  # cross-field checks
        _overrides.clear()
        _overrides.update(merged)
    return _Configured(previous)


def reset() -> None:
    """Variants back to settings; faults, POST /run executions, calls and rate counters cleared."""
    global _running
    with _lock:
        _overrides.clear()
        _faults.clear()
        _runs.clear()
        _rate.clear()
        calls.clear()
        _running = 0


# --- faults and the call log ----------------------------------------------------------------


def inject(
    kind: str,
    *,
    path: str | None = None,
    method: str | None = None,
    times: int | None = 1,
    **params: Any,
) -> Fault:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(FAULT_KINDS)}")
    fault = Fault(kind, re.compile(path) if path else None, method, times, params)
    with _lock:
        _faults.append(fault)
    return fault


def take_fault(method: str, path: str) -> Fault | None:
    """The first fault matching this request, counted as used once."""
    with _lock:
        for fault in _faults:
            if fault.matches(method, path):
                fault.hits += 1
                if fault.times is not None and fault.hits >= fault.times:
                    _faults.remove(fault)
                return fault
    return None


def record_call(method: str, path: str, query: dict[str, str]) -> Call:
    call = Call(method, path, query, time.time())
    with _lock:
        calls.append(call)
    return call


# --- rate and concurrency -------------------------------------------------------------------


def rate_take(now: float, opts: Options) -> RateState:
    """Count one call against the rolling window, unless the window is full."""
    with _lock:
        while _rate and _rate[0] <= now - opts.rate_window_seconds:
            _rate.popleft()
        if len(_rate) >= opts.rate_limit:
            wait = _rate[0] + opts.rate_window_seconds - now
            return RateState(False, 0, max(1, math.ceil(wait)))
        _rate.append(now)
        return RateState(True, opts.rate_limit - len(_rate), 0)


def rate_peek(now: float, opts: Options) -> RateState:
    with _lock:
        used = sum(1 for t in _rate if t > now - opts.rate_window_seconds)
    return RateState(used < opts.rate_limit, max(0, opts.rate_limit - used), 0)


def enter() -> int:
    global _running
    with _lock:
        _running += 1
        return _running


def leave() -> None:
    global _running
    with _lock:
        _running = max(0, _running - 1)


# --- data ---------------------------------------------------------------------------------


def now_ms() -> int:
    return int(time.time() * 1000)


def window_start(at_ms: int | None = None) -> int:
    """The oldest createdAt the API serves: midnight UTC, 30 days before today."""
    at = now_ms() if at_ms is None else at_ms
    return at // DAY_MS * DAY_MS - WINDOW_DAYS * DAY_MS


def dataset() -> Dataset:
    """The demo data set for settings.QFLOW_SIMULATOR_SEED, built once per process and seed."""
    seed = int(settings.QFLOW_SIMULATOR_SEED)
    found = _datasets.get(seed)
    if found is None:
        with _lock:
            found = _datasets.get(seed)
            if found is None:
                found = _datasets[seed] = build_dataset(seed, now_ms())
    return found


def find_execution(execution_id: str) -> Execution | None:
    with _lock:
        run = _runs.get(execution_id)
    return run or dataset().execution(execution_id)


def workflow_executions(workflow_id: str) -> list[Execution]:
    """Data set executions plus POST /run ones of a workflow, newest first."""
    with _lock:
        runs = [r for r in _runs.values() if r.workflow_id == workflow_id]
    found = dataset().by_workflow.get(workflow_id, [])
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
    with _lock:
        _runs[run.id] = run
    return run
