"""Counters shared by every process (web workers, Celery workers, beat), in the shared cache.

/metrics may be answered by any gunicorn worker; a counter kept in one process's memory
would jump back and forth between scrapes. These live in the shared cache (Redis when
REDIS_URL is set: atomic; the file cache otherwise: good enough for one machine), never
expire, and start again from zero when the cache is cleared or Redis restarts, which
Prometheus's rate() and increase() treat as a counter reset.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

_PREFIX = "metrics:qflow-errors:"

# Upstream errors by kind: one QFlow call that ended in an error (after its retries and
# waits), by what the client made of it (qflowui.qflow.errors).
ERROR_KINDS = {
    "QflowUnavailable": "unavailable",  # unreachable, timed out, 5xx after retries
    "QflowRateLimited": "rate_limited",  # 409/429 asking for a longer wait than allowed
    "QflowAuthError": "auth",  # 401, also after a token refresh
    "QflowForbidden": "forbidden",  # 403
    "QflowNotFound": "not_found",  # 404 (e.g. an execution past QFlow's 30 days)
    "QflowRequestRejected": "rejected",  # other 4xx
    "QflowBadResponse": "bad_response",  # an answer we could not read
    "QflowInvalidId": "invalid_id",  # refused before sending
    "QflowConfigError": "config",
}
KINDS = (*dict.fromkeys(ERROR_KINDS.values()), "other")


def error_kind(exc: BaseException) -> str:
    for cls in type(exc).__mro__:
        kind = ERROR_KINDS.get(cls.__name__)
        if kind:
            return kind
    return "other"


def count_upstream_error(exc: BaseException) -> None:
    """Count one failed QFlow call. Never raises: counting must not change what a call does."""
    try:
        from django.core.cache import cache

        key = _PREFIX + error_kind(exc)
        cache.add(key, 0, timeout=None)
        cache.incr(key)
    except Exception:
        logger.debug("could not count an upstream error", exc_info=True)


def upstream_error_counts() -> dict[str, int]:
    """Every kind's count (0 for kinds never seen): one cache read."""
    from django.core.cache import cache

    found = cache.get_many([_PREFIX + kind for kind in KINDS])
    return {kind: int(found.get(_PREFIX + kind) or 0) for kind in KINDS}
