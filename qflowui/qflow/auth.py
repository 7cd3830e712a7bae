"""Bearer tokens from the Qualys gateway (``POST /auth/oidc``), cached per process.

The cache is module level and keyed by (base URL, client id) so that every client
built by ``client_from_settings()`` in one worker shares a token instead of
fetching one per request. Tokens are never logged.

One caller fetches at a time, in the process and across processes (a claim in Django's
shared cache); the others wait for that fetch, but never longer than their own budget (a
page gives up with "QFlow's sign-in is slow" instead of queueing behind a stalled token
endpoint). A failed fetch is remembered for ``FAILURE_MEMO_SECONDS``, in the process and in
the shared cache: a storm of pages makes one attempt, not one each. Only the failure is
shared, never a token.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import errors
from .errors import QflowBadResponse, QflowError, QflowUnavailable

FAILURE_MEMO_SECONDS = 5.0
# A fetch claimed by a process that died is free again after this long.
CLAIM_SECONDS = 60.0
CLAIM_POLL_SECONDS = 0.05
SLOW_SIGN_IN = (
    "QFlow's sign-in is slow: another request is still fetching a token; try again in a moment"
)
REFRESH_MARGIN_SECONDS = 60.0
# Qualys documents a 4 hour lifetime; used when the token is not a readable JWT.
FALLBACK_LIFETIME_SECONDS = 4 * 3600.0
# If our clock says the token is already (nearly) expired, trust the server for a while
# instead of fetching a new token on every call.
MIN_REUSE_SECONDS = 30.0
# Printable ASCII without spaces: a JWT or an opaque token, not an HTML page.
_TOKEN_TEXT = re.compile(r"[!-~]{8,16384}")


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (epoch seconds) of a JWT, read without verifying the signature."""
    parts = token.split(".")
    if len(parts) < 2:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims: Any = json.loads(base64.urlsafe_b64decode(padded))
    except ValueError:
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return float(exp)
    return None


def refresh_time(token: str, now: float) -> float:
    expiry = jwt_expiry(token)
    if expiry is None:
        return now + FALLBACK_LIFETIME_SECONDS - REFRESH_MARGIN_SECONDS
    if expiry - REFRESH_MARGIN_SECONDS <= now:
        return now + MIN_REUSE_SECONDS
    return expiry - REFRESH_MARGIN_SECONDS


def token_from_body(text: str) -> str:
    """The gateway answers with the raw JWT; some setups wrap it in JSON."""
    text = text.strip()
    if text.startswith(("{", '"')):
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            body = body.get("access_token") or body.get("token")
        text = body.strip() if isinstance(body, str) else ""
    if not _TOKEN_TEXT.fullmatch(text):
        # Never echo the body: it could be a token in a shape we did not expect.
        raise QflowBadResponse("the QFlow token endpoint did not return a token")
    return text


@dataclass(frozen=True, slots=True)
class _Cached:
    token: str
    refresh_at: float


@dataclass(frozen=True, slots=True)
class _Failed:
    error: QflowError
    until: float  # monotonic


class TokenCache:
    """Tokens per (base URL, client id), fetched one at a time.

    Within a process a lock orders the fetches; across processes (several gunicorn workers,
    Celery workers) a claim in Django's shared cache does, and the failure memo is shared
    there too. The token itself never leaves the process.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()  # guards the dicts; never held while fetching
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._tokens: dict[tuple[str, str], _Cached] = {}
        self._failures: dict[tuple[str, str], _Failed] = {}

    def get(
        self, key: tuple[str, str], fetch: Callable[[], str], *, wait: float | None = None
    ) -> str:
        """The cached token, or one fetched now by this caller after the one already fetching.

        ``wait`` bounds how long this caller waits for another caller's fetch (None: as long
        as it takes); past it, QflowUnavailable ("QFlow's sign-in is slow"). A fetch that
        failed less than FAILURE_MEMO_SECONDS ago, here or in another process, raises its
        error again without asking QFlow.
        """
        token = self._fresh(key)
        if token is not None:
            return token
        self._raise_remembered(key)
        deadline = None if wait is None else time.monotonic() + max(0.0, wait)
        lock = self._lock_for(key)
        if not lock.acquire(timeout=-1 if wait is None else max(0.0, wait)):
            raise QflowUnavailable(SLOW_SIGN_IN)
        try:
            token = self._fresh(key)  # fetched by the caller we waited for
            if token is not None:
                return token
            self._raise_remembered(key)
            claimed = self._claim_across_processes(key, deadline)
            try:
                now = time.time()
                try:
                    token = fetch()
                except QflowError as exc:
                    self._remember(key, exc)
                    raise
                with self._guard:
                    self._failures.pop(key, None)
                    self._tokens[key] = _Cached(token, refresh_time(token, now))
                _shared_call("delete", _shared_key(key, "failed"))
                return token
            finally:
                if claimed:
                    _shared_call("delete", _shared_key(key, "fetching"))
        finally:
            lock.release()

    def _fresh(self, key: tuple[str, str]) -> str | None:
        with self._guard:
            cached = self._tokens.get(key)
        if cached is not None and time.time() < cached.refresh_at:
            return cached.token
        return None

    def _remember(self, key: tuple[str, str], exc: QflowError) -> None:
        with self._guard:
            self._failures[key] = _Failed(exc, time.monotonic() + FAILURE_MEMO_SECONDS)
        record = {
            "kind": type(exc).__name__,
            "message": exc.message,
            "status_code": exc.status_code,
            "detail": exc.detail,
            "until": time.time() + FAILURE_MEMO_SECONDS,
        }
        # Whole seconds: Redis keeps nothing for less than one.
        _shared_call("set", _shared_key(key, "failed"), record, math.ceil(FAILURE_MEMO_SECONDS))

    def _raise_remembered(self, key: tuple[str, str]) -> None:
        with self._guard:
            failed = self._failures.get(key)
        if failed is not None and time.monotonic() < failed.until:
            # A copy: the same exception object raised in several threads would share
            # (and keep growing) one traceback.
            raise copy.copy(failed.error)
        record = _shared_call("get", _shared_key(key, "failed"))
        if isinstance(record, dict) and time.time() < float(record.get("until", 0)):
            kind = getattr(errors, str(record.get("kind")), None)
            if not (isinstance(kind, type) and issubclass(kind, QflowError)):
                kind = QflowUnavailable
            raise kind(
                str(record.get("message") or "QFlow's sign-in failed a moment ago"),
                status_code=record.get("status_code"),
                detail=record.get("detail"),
            )

    def _claim_across_processes(self, key: tuple[str, str], deadline: float | None) -> bool:
        """Wait until no other process is fetching this token, then claim the fetch.

        True when claimed (to be released); False without a shared cache. Past `deadline`,
        QflowUnavailable; a failure the other process met is raised as it was.
        """
        left = CLAIM_SECONDS if deadline is None else deadline - time.monotonic()
        seconds = math.ceil(max(1.0, min(CLAIM_SECONDS, left) + 1))
        fetching = _shared_key(key, "fetching")
        while True:
            # The fetcher shares its failure before it lets go of the claim: look first.
            self._raise_remembered(key)
            claimed = _shared_call("add", fetching, os.getpid(), seconds)
            if claimed is None:
                return False  # no shared cache (or it is down): this process alone decides
            if claimed:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                raise QflowUnavailable(SLOW_SIGN_IN)
            time.sleep(CLAIM_POLL_SECONDS)

    def _lock_for(self, key: tuple[str, str]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def invalidate(self, key: tuple[str, str], token: str) -> None:
        """Drop ``token`` after a 401, unless another thread already replaced it."""
        with self._guard:
            cached = self._tokens.get(key)
            if cached is not None and cached.token == token:
                del self._tokens[key]

    def clear(self) -> None:
        with self._guard:
            keys = set(self._locks) | set(self._tokens) | set(self._failures)
            self._tokens.clear()
            self._failures.clear()
        for key in keys:
            _shared_call("delete", _shared_key(key, "failed"))
            _shared_call("delete", _shared_key(key, "fetching"))


def _shared_key(key: tuple[str, str], what: str) -> str:
    digest = hashlib.sha256("\n".join(key).encode()).hexdigest()[:32]
    return f"qflowui:token:{digest}:{what}"


def _shared_call(method: str, *args: Any) -> Any:
    """A call on Django's shared cache; None when there is none or it failed."""
    try:
        from django.conf import settings

        if not settings.configured:
            return None
        from django.core.cache import cache

        return getattr(cache, method)(*args)
    except Exception:  # noqa: BLE001 - the shared part is an optimisation, never a failure
        return None


TOKEN_CACHE = TokenCache()


def clear_token_cache() -> None:
    """Forget every cached token (tests, or after rotating credentials)."""
    TOKEN_CACHE.clear()
