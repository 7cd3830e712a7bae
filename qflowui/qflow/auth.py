"""Bearer tokens from the Qualys gateway (``POST /auth/oidc``), cached per process.

The cache is module level and keyed by (base URL, client id) so that every client
built by ``client_from_settings()`` in one worker shares a token instead of
fetching one per request. Tokens are never logged.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import QflowBadResponse

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


class TokenCache:
    def __init__(self) -> None:
        # One lock for fetching too: parallel callers wait for one fetch instead of stampeding.
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], _Cached] = {}

    def get(self, key: tuple[str, str], fetch: Callable[[], str]) -> str:
        with self._lock:
            cached = self._tokens.get(key)
            now = time.time()
            if cached is not None and now < cached.refresh_at:
                return cached.token
            token = fetch()
            self._tokens[key] = _Cached(token, refresh_time(token, now))
            return token

    def invalidate(self, key: tuple[str, str], token: str) -> None:
        """Drop ``token`` after a 401, unless another thread already replaced it."""
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.token == token:
                del self._tokens[key]

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


TOKEN_CACHE = TokenCache()


def clear_token_cache() -> None:
    """Forget every cached token (tests, or after rotating credentials)."""
    TOKEN_CACHE.clear()
