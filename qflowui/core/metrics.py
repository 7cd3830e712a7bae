"""/metrics in Prometheus text format, behind a bearer token (QFLOWUI_METRICS_TOKEN).

Two kinds of metrics:

- **Requests** (``qflowui_http_requests_total``, ``qflowui_http_request_duration_seconds``),
  counted by RequestMetricsMiddleware in the memory of the process that served them,
  labelled by method, view name (the URL pattern's name, never the raw path) and status
  class. gunicorn runs several worker processes: each scrape sees the process that answered
  it. Set PROMETHEUS_MULTIPROC_DIR (an empty directory, emptied at every start, shared by
  the web processes) and they are added up over every process (prometheus-client's
  multiprocess mode).
- **qflowui's own state** (sync freshness, QFlow budget and errors, runs by state, queue
  length, mirror size, beat heartbeat): computed at scrape time from the database, the
  shared cache and the broker, so they are the same whichever process answers. A bounded
  number of queries (at most 10), whatever the mirror's size.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.db.models import Count, Max, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# pg_class.reltuples above this: the executions count is PostgreSQL's estimate, not count(*).
EXACT_COUNT_BELOW = 100_000

REQUESTS = Counter(
    "qflowui_http_requests",
    "HTTP requests answered, by method, view name and status class.",
    ["method", "view", "status"],
)
LATENCY = Histogram(
    "qflowui_http_request_duration_seconds",
    "Time to answer an HTTP request (the whole middleware stack), by method, view and status.",
    ["method", "view", "status"],
)


class RequestMetricsMiddleware:
    """Counts and times every request. Labels stay bounded: unknown methods are "other",
    a request no URL pattern matched (404s, redirects before routing) is "unmatched"."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        method = request.method if request.method in METHODS else "other"
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or "unnamed") if match is not None else "unmatched"
        status = f"{response.status_code // 100}xx"
        try:
            REQUESTS.labels(method, view, status).inc()
            LATENCY.labels(method, view, status).observe(elapsed)
        except Exception:  # a metric must never break a page
            logger.debug("could not record request metrics", exc_info=True)
        return response


# --- the endpoint -----------------------------------------------------------------------


def _authorized(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


@login_not_required
@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format. 404 when QFLOWUI_METRICS_TOKEN is unset (metrics are off);
    401 without the right ``Authorization: Bearer <token>``."""
    token = getattr(settings, "QFLOWUI_METRICS_TOKEN", "")
    if not token:
        raise Http404("metrics are off")
    if not _authorized(request, token):
        response = HttpResponse("401 Unauthorized: a bearer token is required\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="qflowui metrics"'
        response["Content-Type"] = "text/plain; charset=utf-8"
        return response
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_DIR_ENV):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessMetrics())
    registry.register(StateCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class _ProcessMetrics(Collector):
    """Everything in this process's default registry (requests, Python, process)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


# --- qflowui's state, read at scrape time ---------------------------------------------


class StateCollector(Collector):
    """Sync, QFlow budget and errors, runs, queue, mirror, beat. Each part is read on its
    own: a database that is down costs the database part (qflowui_metrics_source_up 0),
    never the whole scrape."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "qflowui_metrics_source_up",
            "1 when the source these metrics read at scrape time answered, else 0.",
            labels=["source"],
        )
        for source, part in (
            ("database", self._database),
            ("cache", self._cache),
            ("broker", self._broker),
        ):
            try:
                found = list(part())
            except Exception:
                logger.warning("metrics: could not read the %s", source, exc_info=True)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from found
        yield up

    # database: at most 10 queries ----------------------------------------------------

    def _database(self) -> Iterator[Metric]:
        from qflowui.mirror.models import SyncRun, Workflow
        from qflowui.runs.heartbeat import BEAT
        from qflowui.runs.models import Heartbeat, Run, RunState

        now = timezone.now()
        finished = SyncRun.objects.exclude(finished_at=None)
        last_ok = finished.filter(ok=True).aggregate(at=Max("finished_at"))["at"]
        yield _gauge(
            "qflowui_sync_last_complete_age_seconds",
            "Seconds since the last complete (ok) sync pass finished; absent before the first.",
            None if last_ok is None else (now - last_ok).total_seconds(),
        )
        last = finished.order_by("-finished_at").values("finished_at", "ok", "partial").first()
        yield _gauge(
            "qflowui_sync_last_pass_age_seconds",
            "Seconds since the last sync pass (whatever its status) finished.",
            None if last is None else (now - last["finished_at"]).total_seconds(),
        )
        status = GaugeMetricFamily(
            "qflowui_sync_last_pass_status",
            "1 for the status of the last sync pass (ok, partial or failed), 0 for the others.",
            labels=["status"],
        )
        if last is not None:
            shown = SyncRun.OK if last["ok"] else SyncRun.PARTIAL if last["partial"] else "failed"
            for name in (SyncRun.OK, SyncRun.PARTIAL, SyncRun.FAILED):
                status.add_metric([name], 1 if name == shown else 0)
        yield status

        yield from _budget(SyncRun, now)

        runs = GaugeMetricFamily("qflowui_runs", "Runs by state.", labels=["state"])
        counts = dict(Run.objects.values_list("state").annotate(n=Count("id")).order_by())
        for state in RunState.values:
            runs.add_metric([state], counts.get(state, 0))
        yield runs

        rows = GaugeMetricFamily(
            "qflowui_mirror_rows",
            "Rows in the mirror: workflows (exact), executions (exact below "
            f"{EXACT_COUNT_BELOW:,}, PostgreSQL's estimate above).",
            labels=["table"],
        )
        rows.add_metric(["workflows"], Workflow.objects.count())
        rows.add_metric(["executions"], _executions_rows())
        yield rows

        beat = Heartbeat.objects.filter(name=BEAT).values_list("at", flat=True).first()
        yield _gauge(
            "qflowui_beat_heartbeat_age_seconds",
            "Seconds since Celery beat last sent a scheduled task; absent before the first.",
            None if beat is None else (now - beat).total_seconds(),
        )

    # cache: one read -------------------------------------------------------------------

    def _cache(self) -> Iterator[Metric]:
        from qflowui.core.counters import upstream_error_counts

        errors = CounterMetricFamily(
            "qflowui_qflow_errors",
            "QFlow calls that ended in an error (after retries), by kind; every process, "
            "kept in the shared cache (reset when it is cleared).",
            labels=["kind"],
        )
        for kind, count in upstream_error_counts().items():
            errors.add_metric([kind], count)
        yield errors

    # broker: Redis LLEN ------------------------------------------------------------------

    def _broker(self) -> Iterator[Metric]:
        queue = settings.CELERY_TASK_DEFAULT_QUEUE
        length = queue_length(settings.CELERY_BROKER_URL, queue)
        if length is None:
            return  # the filesystem broker: no length to give
        family = GaugeMetricFamily(
            "qflowui_celery_queue_length",
            "Task messages waiting in the Celery queue (Redis broker only).",
            labels=["queue"],
        )
        family.add_metric([queue], length)
        yield family


def _gauge(name: str, documentation: str, value: float | None) -> Metric:
    family = GaugeMetricFamily(name, documentation)
    if value is not None:
        family.add_metric([], max(0.0, value))
    return family


def _budget(sync_run_model: type, now: datetime) -> Iterator[Metric]:
    """QFlow's advertised rate limit and the calls the sync passes made within its window."""
    latest = (
        sync_run_model.objects.exclude(rate_limit=None)
        .order_by("-started_at")
        .values("rate_limit", "rate_window_sec")
        .first()
    )
    limit = window = None
    if latest and latest["rate_limit"] and latest["rate_window_sec"]:
        limit, window = latest["rate_limit"], latest["rate_window_sec"]
    yield _gauge(
        "qflowui_qflow_rate_limit_calls",
        "Calls QFlow allows per window (X-RateLimit-Limit, as last advertised).",
        limit,
    )
    yield _gauge(
        "qflowui_qflow_rate_limit_window_seconds",
        "QFlow's rate-limit window (X-RateLimit-Window-Sec, as last advertised).",
        window,
    )
    used = None
    if window:
        since = now - timedelta(seconds=window)
        total = sync_run_model.objects.filter(started_at__gte=since).aggregate(n=Sum("api_calls"))
        used = total["n"] or 0
    yield _gauge(
        "qflowui_qflow_api_calls_in_window",
        "QFlow calls the sync passes made within the last rate-limit window (the sync keeps "
        "under 80% of the limit; page and task fetches are not included).",
        used,
    )
    until = sync_run_model.objects.filter(rate_limited_until__gt=now).aggregate(
        until=Max("rate_limited_until")
    )["until"]
    yield _gauge(
        "qflowui_qflow_rate_limited_seconds",
        "Seconds left of QFlow's last 409/429 wait (no sync call before it ends); 0 if none.",
        0.0 if until is None else (until - now).total_seconds(),
    )


def _executions_rows() -> int:
    from qflowui.mirror.models import Execution

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)",
                [Execution._meta.db_table],
            )
            row = cursor.fetchone()
        estimate = row[0] if row else None
        if estimate is not None and estimate >= EXACT_COUNT_BELOW:
            return int(estimate)
    return Execution.objects.count()


def queue_length(broker_url: str, queue: str) -> int | None:
    """Messages waiting in ``queue`` on a Redis broker (kombu keeps one list per priority
    step); None for another broker."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return None
    import redis
    from kombu.transport.redis import PRIORITY_STEPS, Channel

    client = redis.Redis.from_url(broker_url, socket_connect_timeout=1.0, socket_timeout=1.0)
    try:
        pipe = client.pipeline(transaction=False)
        for step in PRIORITY_STEPS:
            pipe.llen(queue if step == 0 else f"{queue}{Channel.sep}{step}")
        return int(sum(pipe.execute()))
    finally:
        client.close()


__all__ = ["RequestMetricsMiddleware", "StateCollector", "metrics", "queue_length"]
