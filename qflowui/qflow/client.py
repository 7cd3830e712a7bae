"""The QFlow API client: the only code in qflowui that speaks HTTP to QFlow.

Reads retry on connection errors, timeouts, 5xx and rate limits; the run POST is
never retried (QFlow has no idempotency key, so a retry could start a second run),
except after a 401, which proves QFlow did not accept it.

A client may have a ``budget``: seconds one call may take in all, token fetch, retries,
waits and redirects included. Pages use one (``client_from_settings(purpose="page")``) so
that a user never waits long on QFlow; the sync and the tasks keep longer timeouts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
import urllib3

from qflowui.core.counters import count_upstream_error

from .auth import TOKEN_CACHE, token_from_body
from .errors import QflowBadResponse, QflowConfigError, QflowError, QflowUnavailable
from .parse import (
    parse_execution,
    parse_page,
    parse_payload_text,
    parse_run_result,
    parse_step,
    parse_steps,
    parse_workflow,
)
from .query import clamp_window, iso_z, status_query
from .transport import (
    RATE_LIMIT_STATUSES,
    BearerAuth,
    Transport,
    decode_json,
    error_for_response,
    wait_seconds,
)
from .types import Execution, Page, RateLimitInfo, RunResult, Step, Workflow
from .validate import check_base_url, check_node_id, check_uuid

logger = logging.getLogger("qflowui.qflow")

API = "/qflowapi/v1"
MAX_BACKOFF_SECONDS = 10.0
# Below this much budget left, another request is not worth starting.
MIN_ATTEMPT_SECONDS = 0.05
_RETRYABLE = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


def _decoded(response: requests.Response, what: str) -> Any:
    """The JSON of a good answer; an unreadable one is counted as a bad_response error."""
    try:
        return decode_json(response, what)
    except QflowError as exc:
        count_upstream_error(exc)
        raise


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly never reached QFlow (refused, unresolvable host)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


class QflowClient:
    """A QFlow API client. Give either a fixed ``token`` or ``client_id`` + ``client_secret``.

    ``timeout`` bounds connect and read of every request (a number or a (connect, read)
    pair); ``max_retries`` is how many times a read is retried after a connection error,
    timeout, 5xx or rate limit, with exponential ``backoff``; a rate limit asking for
    more than ``max_rate_wait`` seconds raises QflowRateLimited at once. ``budget``
    bounds one call in all (None: only the per-request timeouts bound it).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        timeout: float | tuple[float, float] = 10.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_rate_wait: float = 60.0,
        budget: float | None = None,
        session: requests.Session | None = None,
        allow_http_hosts: Iterable[str] = (),
    ) -> None:
        self.base_url = check_base_url(base_url, allow_http_hosts)
        if not token and not (client_id and client_secret):
            raise QflowConfigError(
                "no QFlow credentials: set QFLOW_TOKEN, or QFLOW_CLIENT_ID and QFLOW_CLIENT_SECRET"
            )
        self._fixed_token = _bare_token(token) if token else None
        self._client_id = client_id or ""
        self._client_secret = client_secret or ""
        self.max_retries = max(0, int(max_retries))
        self.backoff = max(0.0, float(backoff))
        self.max_rate_wait = float(max_rate_wait)
        self.budget = float(budget) if budget is not None else None
        self._transport = Transport(self.base_url, timeout=timeout, session=session)
        # Seams for tests; production uses the real clock.
        self._sleep: Callable[[float], None] = time.sleep
        self._monotonic: Callable[[], float] = time.monotonic
        self._now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def __repr__(self) -> str:
        return f"QflowClient({self.base_url!r})"

    @property
    def calls(self) -> int:
        """HTTP requests this client sent, token fetches, retries and redirects included."""
        return self._transport.calls

    @property
    def rate_limit(self) -> RateLimitInfo | None:
        """The X-RateLimit-* / X-Concurrency-* headers QFlow sent last."""
        return self._transport.rate_limit

    def close(self) -> None:
        self._transport.close()

    # --- workflows ------------------------------------------------------------------

    def list_workflows(
        self,
        *,
        page_number: int = 1,
        page_size: int = 100,
        query: str | None = None,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        order: str | None = None,
    ) -> Page[Workflow]:
        params: dict[str, Any] = {"pageNumber": page_number, "pageSize": page_size}
        params.update(_dates(start_at, end_at))
        params.update(_optional(query=query, order=order))
        body = self._get_json(f"{API}/workflows", params, "the workflow list")
        return parse_page(
            body, parse_workflow, what="workflow list", page_number=page_number, page_size=page_size
        )

    def iter_workflows(self, *, page_size: int = 100) -> Iterator[Workflow]:
        """Every workflow, page by page, until an empty page or ``total`` is reached.

        A short page does not end the walk: QFlow may cap ``pageSize`` below what we ask.
        """
        page_number, seen = 1, 0
        while True:
            page = self.list_workflows(page_number=page_number, page_size=page_size)
            yield from page.items
            seen += len(page.items)
            if not page.items or seen >= page.total:
                return
            page_number += 1

    def get_workflow(self, workflow_id: str) -> Workflow:
        workflow_id = check_uuid(workflow_id, "workflow")
        return parse_workflow(self._get_json(f"{API}/workflows/{workflow_id}", None, "a workflow"))

    def run_workflow(
        self,
        workflow_id: str,
        *,
        input: dict[str, Any] | None = None,  # QFlow's own name, builtin shadowed on purpose
        variables: dict[str, Any] | None = None,
    ) -> RunResult:
        """Start a run. Never retried: on QflowUnavailable check ``maybe_accepted``."""
        workflow_id = check_uuid(workflow_id, "workflow")
        body = {
            key: value
            for key, value in (("input", input), ("variables", variables))
            if value is not None
        }
        response = self._request(
            "POST", f"{API}/workflows/{workflow_id}/run", json_body=body, idempotent=False
        )
        return parse_run_result(_decoded(response, "the run response"))

    # --- executions -----------------------------------------------------------------

    def list_executions(
        self,
        workflow_id: str,
        *,
        page_number: int = 1,
        offset: int | None = None,
        page_size: int = 50,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        statuses: Iterable[str] | None = None,
        query: str | None = None,
        order: str | None = "-createdAt",
    ) -> Page[Execution]:
        """One page of a workflow's executions within QFlow's 30-day window.

        ``start_at`` is moved up to the window's start; a range that ends before
        the window returns an empty page without asking QFlow.
        """
        workflow_id = check_uuid(workflow_id, "workflow")
        paging = {"offset": offset} if offset is not None else {"pageNumber": page_number}
        shown_page = None if offset is not None else page_number
        window = clamp_window(start_at, end_at, self._now())
        if window is None:
            return Page(
                items=[], total=0, page_number=shown_page, page_size=page_size, offset=offset
            )
        params: dict[str, Any] = {"pageSize": page_size, **paging, **_dates(*window)}
        params.update(_optional(query=status_query(statuses, query), order=order))
        body = self._get_json(
            f"{API}/workflows/{workflow_id}/executions", params, "the execution list"
        )
        return parse_page(
            body,
            parse_execution,
            what="execution list",
            page_number=shown_page,
            page_size=page_size,
            offset=offset,
        )

    def get_execution(self, execution_id: str, *, include_steps: bool = False) -> Execution:
        execution_id = check_uuid(execution_id, "execution")
        params = {"includeSteps": _flag(include_steps)}
        body = self._get_json(f"{API}/executions/{execution_id}", params, "an execution")
        return parse_execution(body)

    # --- steps ----------------------------------------------------------------------

    def list_steps(
        self, execution_id: str, *, include_data: bool = False, order: str | None = None
    ) -> list[Step]:
        execution_id = check_uuid(execution_id, "execution")
        params = {"includeData": _flag(include_data), **_optional(order=order)}
        body = self._get_json(f"{API}/executions/{execution_id}/steps", params, "the step list")
        return parse_steps(body)

    def get_step(self, execution_id: str, node_id: str) -> Step:
        return parse_step(self._get_json(self._step_path(execution_id, node_id), None, "a step"))

    def get_step_input(self, execution_id: str, node_id: str, *, parse_json: bool = True) -> Any:
        """The step's input, decoded to the same value whichever ``parseJson`` is asked for."""
        return self._get_payload(self._step_path(execution_id, node_id) + "/input", parse_json)

    def get_step_output(self, execution_id: str, node_id: str, *, parse_json: bool = True) -> Any:
        """The step's output, decoded to the same value whichever ``parseJson`` is asked for."""
        return self._get_payload(self._step_path(execution_id, node_id) + "/output", parse_json)

    def _step_path(self, execution_id: str, node_id: str) -> str:
        execution_id = check_uuid(execution_id, "execution")
        node_id = quote(check_node_id(node_id), safe="")
        return f"{API}/executions/{execution_id}/steps/{node_id}"

    def _get_payload(self, path: str, parse_json: bool) -> Any:
        response = self._request("GET", path, params={"parseJson": _flag(parse_json)})
        if "html" in response.headers.get("Content-Type", "").lower():
            raise QflowBadResponse(
                "QFlow sent an HTML page instead of a step payload",
                status_code=response.status_code,
            )
        return parse_payload_text(response.content.decode("utf-8", errors="replace"))

    # --- HTTP -----------------------------------------------------------------------

    def _get_json(self, path: str, params: dict[str, Any] | None, what: str) -> Any:
        return _decoded(self._request("GET", path, params=params), what)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        idempotent: bool = True,
    ) -> requests.Response:
        """An authenticated call; after a 401 it drops the cached token and tries once more.
        A call that ends in an error is counted by kind (qflowui_qflow_errors_total)."""
        try:
            return self._authenticated(method, path, params, json_body, idempotent)
        except QflowError as exc:
            count_upstream_error(exc)
            raise

    def _authenticated(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        json_body: Any,
        idempotent: bool,
    ) -> requests.Response:
        deadline = None if self.budget is None else self._monotonic() + self.budget
        token = self._token(deadline)
        call = {
            "params": params,
            "json_body": json_body,
            "idempotent": idempotent,
            "deadline": deadline,
        }
        response = self._attempts(method, path, auth=BearerAuth(token), **call)
        if response.status_code == 401 and self._fixed_token is None:
            response.close()
            TOKEN_CACHE.invalidate(self._cache_key, token)
            token = self._token(deadline)
            response = self._attempts(method, path, auth=BearerAuth(token), **call)
        if not response.ok:
            raise error_for_response(
                response, maybe_accepted=not idempotent, secrets=self._secrets(token)
            )
        return response

    def _attempts(
        self,
        method: str,
        path: str,
        *,
        auth: BearerAuth,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = True,
        deadline: float | None = None,
    ) -> requests.Response:
        """Send, retrying what is safe to retry; returns the final response, whatever its status.

        With a ``deadline`` (monotonic time), no request outlives it and no retry or wait
        starts that could not finish before it.
        """
        headers = {"Accept": "application/json", **(headers or {})}
        failures = rate_waits = 0
        while True:
            try:
                response = self._transport.send(
                    method,
                    path,
                    headers=headers,
                    auth=auth,
                    params=params,
                    json_body=json_body,
                    data=data,
                    timeout=self._timeout_within(deadline),
                )
            except requests.RequestException as exc:
                if (
                    idempotent
                    and isinstance(exc, _RETRYABLE)
                    and failures < self.max_retries
                    and self._fits(deadline, self._backoff(failures + 1))
                ):
                    failures += 1
                    self._pause(method, path, type(exc).__name__, self._backoff(failures))
                    continue
                raise self._unavailable(exc, idempotent) from None
            status = response.status_code
            if status in RATE_LIMIT_STATUSES and idempotent and rate_waits < self.max_retries:
                wait = wait_seconds(response)
                wait = self._backoff(rate_waits + 1) if wait is None else wait
                if wait <= self.max_rate_wait and self._fits(deadline, wait):
                    rate_waits += 1
                    response.close()
                    self._pause(method, path, f"HTTP {status}", wait)
                    continue
            if (
                status >= 500
                and idempotent
                and failures < self.max_retries
                and self._fits(deadline, self._backoff(failures + 1))
            ):
                failures += 1
                response.close()
                self._pause(method, path, f"HTTP {status}", self._backoff(failures))
                continue
            return response

    def _remaining(self, deadline: float | None) -> float | None:
        return None if deadline is None else deadline - self._monotonic()

    def _fits(self, deadline: float | None, pause: float) -> bool:
        """True when a pause of ``pause`` seconds still leaves time for another attempt."""
        remaining = self._remaining(deadline)
        return remaining is None or remaining - pause > MIN_ATTEMPT_SECONDS

    def _timeout_within(self, deadline: float | None) -> tuple[float, float] | None:
        """The transport's timeouts, cut to what is left of the budget."""
        remaining = self._remaining(deadline)
        if remaining is None:
            return None
        if remaining < MIN_ATTEMPT_SECONDS:
            raise QflowUnavailable(f"QFlow did not answer within {self.budget:g} s")
        connect, read = self._transport.timeout
        return min(connect, remaining), min(read, remaining)

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)

    def _pause(self, method: str, path: str, reason: str, delay: float) -> None:
        logger.info("QFlow %s %s: %s, retrying in %.1f s", method, path, reason, delay)
        self._sleep(delay)

    def _unavailable(self, exc: requests.RequestException, idempotent: bool) -> QflowUnavailable:
        kind = "timed out" if isinstance(exc, requests.Timeout) else "could not be reached"
        maybe_accepted = not idempotent and not _never_sent(exc)
        message = f"QFlow {kind} ({type(exc).__name__})"
        if maybe_accepted:
            message += "; the request may have reached QFlow"
        return QflowUnavailable(message, maybe_accepted=maybe_accepted)

    # --- tokens ---------------------------------------------------------------------

    @property
    def _cache_key(self) -> tuple[str, str]:
        return (self.base_url, self._client_id)

    def _secrets(self, token: str) -> tuple[str, ...]:
        return (token, self._client_secret)

    def _token(self, deadline: float | None = None) -> str:
        if self._fixed_token is not None:
            return self._fixed_token
        return TOKEN_CACHE.get(
            self._cache_key,
            lambda: self._fetch_token(deadline),
            wait=self._remaining(deadline),
        )

    def _fetch_token(self, deadline: float | None = None) -> str:
        headers = {
            "clientId": self._client_id,
            "clientSecret": self._client_secret,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        # Fetching a token has no side effect, so it may be retried like a read.
        response = self._attempts(
            "POST",
            "/auth/oidc",
            auth=BearerAuth(None),
            data=b"",
            headers=headers,
            deadline=deadline,
        )
        if not response.ok:
            raise error_for_response(response, secrets=(self._client_secret,))
        return token_from_body(response.content.decode("utf-8", errors="replace"))


def _bare_token(token: str) -> str:
    """QFLOW_TOKEN pasted as "Bearer ey..." works too."""
    token = token.strip()
    return token[7:].strip() if token.lower().startswith("bearer ") else token


def _dates(start_at: datetime | None, end_at: datetime | None) -> dict[str, str]:
    dates = {"startAt": start_at, "endAt": end_at}
    return {key: iso_z(value) for key, value in dates.items() if value is not None}


def _optional(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in (None, "")}


# What each kind of caller may spend on one call (see client_from_settings).
SYNC, PAGE, TASK = "sync", "page", "task"
# A payload task may wait longer than a page, but not for ever: its Celery time limits
# (qflowui.executions.tasks) are above this budget.
TASK_TIMEOUT_SECONDS = 20.0
TASK_BUDGET_SECONDS = 45.0


def client_from_settings(purpose: str = SYNC, **overrides: Any) -> QflowClient:
    """A client configured from Django settings, read now (never at import).

    ``purpose`` sets how long one call may take:

    - ``"sync"`` (the default; the sync and the run tasks): QFLOW_TIMEOUT_SECONDS per
      request, three retries;
    - ``"page"`` (a user is waiting): QFLOW_PAGE_BUDGET_SECONDS for the whole call, token
      fetch and at most one retry included;
    - ``"task"`` (a Celery task fetching for a page, e.g. a step payload): longer
      timeouts, one retry, TASK_BUDGET_SECONDS in all.
    """
    from django.conf import settings

    timeout = float(getattr(settings, "QFLOW_TIMEOUT_SECONDS", 10.0))
    options: dict[str, Any] = {
        "token": getattr(settings, "QFLOW_TOKEN", "") or None,
        "client_id": getattr(settings, "QFLOW_CLIENT_ID", "") or None,
        "client_secret": getattr(settings, "QFLOW_CLIENT_SECRET", "") or None,
        "allow_http_hosts": tuple(getattr(settings, "QFLOW_ALLOW_HTTP_HOSTS", ())),
        "timeout": timeout,
    }
    if purpose == PAGE:
        budget = float(getattr(settings, "QFLOW_PAGE_BUDGET_SECONDS", 4.0))
        options.update(
            timeout=min(timeout, budget),
            max_retries=1,
            backoff=0.2,
            max_rate_wait=budget / 2,
            budget=budget,
        )
    elif purpose == TASK:
        options.update(
            timeout=max(timeout, TASK_TIMEOUT_SECONDS),
            max_retries=1,
            backoff=0.5,
            max_rate_wait=10.0,
            budget=TASK_BUDGET_SECONDS,
        )
    elif purpose != SYNC:
        raise ValueError(f"unknown purpose {purpose!r}: use sync, page or task")
    options.update(overrides)
    return QflowClient(getattr(settings, "QFLOW_BASE_URL", ""), **options)
