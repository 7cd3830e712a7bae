"""One HTTP exchange with QFlow: timeouts, safe redirects, counting, and error mapping.

Retries and token refresh live in the client; this module sends a single logical
request (following at most a few same-origin redirects) and turns a final
response into our errors.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.auth import AuthBase

from qflowui.core import jsonio
from qflowui.core.masking import mask_free_text

from .errors import (
    QflowAuthError,
    QflowBadResponse,
    QflowError,
    QflowForbidden,
    QflowNotFound,
    QflowRateLimited,
    QflowRequestRejected,
    QflowUnavailable,
)
from .parse import not_json_message, parse_rate_limit
from .types import RateLimitInfo

logger = logging.getLogger("qflowui.qflow")

MAX_REDIRECTS = 3
RATE_LIMIT_STATUSES = frozenset({409, 429})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_MAX_DETAIL = 200


class BearerAuth(AuthBase):
    """Sets the bearer header. Passing any auth object also stops requests reading ~/.netrc."""

    def __init__(self, token: str | None) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._token:
            request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def split_timeout(timeout: float | tuple[float, float]) -> tuple[float, float]:
    """(connect, read). A single number bounds both; connecting never needs more than 10 s."""
    if isinstance(timeout, tuple):
        return float(timeout[0]), float(timeout[1])
    return min(float(timeout), 10.0), float(timeout)


class Transport:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float | tuple[float, float],
        session: requests.Session | None,
    ) -> None:
        self.base_url = base_url
        self.timeout = split_timeout(timeout)
        self.session = session or requests.Session()
        self.owns_session = session is None
        self.calls = 0
        self.rate_limit: RateLimitInfo | None = None
        self._origin = origin(base_url)
        self._lock = threading.Lock()

    def send(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        auth: AuthBase,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        timeout: tuple[float, float] | None = None,
    ) -> requests.Response:
        """Send one request, following same-origin redirects only; credentials never leave.

        ``timeout`` (connect, read) replaces the transport's own for this request: the
        client passes what is left of a caller's budget.
        """
        url = self.base_url + path
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send_once(
                method, url, headers, auth, params, json_body, data, timeout or self.timeout
            )
            if not response.is_redirect:
                return response
            url = self._redirect_target(response)
            params = None  # the Location carries its own query string
            if response.status_code == 303 or (
                response.status_code in (301, 302) and method == "POST"
            ):
                method, json_body, data = "GET", None, None
            response.close()
        raise QflowBadResponse("QFlow redirected too many times", status_code=response.status_code)

    def _redirect_target(self, response: requests.Response) -> str:
        target = urljoin(response.url, response.headers["Location"])
        if origin(target) != self._origin:
            host = urlsplit(target).hostname or "?"
            response.close()
            raise QflowBadResponse(
                f"QFlow redirected to another host ({host}); not following it with credentials",
                status_code=response.status_code,
            )
        return target

    def _send_once(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        auth: AuthBase,
        params: dict[str, Any] | None,
        json_body: Any,
        data: bytes | None,
        timeout: tuple[float, float],
    ) -> requests.Response:
        with self._lock:
            self.calls += 1
        started = time.monotonic()
        path = urlsplit(url).path
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                json=json_body,
                data=data,
                headers=headers,
                auth=auth,
                timeout=timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            elapsed = (time.monotonic() - started) * 1000
            logger.debug("QFlow %s %s failed: %s after %.0f ms", method, path, _name(exc), elapsed)
            raise
        elapsed = (time.monotonic() - started) * 1000
        logger.debug("QFlow %s %s -> %s in %.0f ms", method, path, response.status_code, elapsed)
        info = parse_rate_limit(response.headers)
        if info is not None:
            self.rate_limit = info
        return response

    def close(self) -> None:
        if self.owns_session:
            self.session.close()


def _name(exc: BaseException) -> str:
    return type(exc).__name__


def clean_detail(text: str, secrets: tuple[str, ...] = ()) -> str | None:
    """One safe line: no control characters, no secrets, bounded length.

    QFlow's messages echo what they were given (an API key, a connection string), so they
    go through the same masking as payloads before anyone stores, shows or logs them.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = mask_free_text(" ".join(_CONTROL.sub(" ", text).split()))
    if not text:
        return None
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def qflow_message(response: requests.Response, secrets: tuple[str, ...] = ()) -> str | None:
    """QFlow's own message from a JSON error body; plain-text and HTML bodies are not shown."""
    try:
        # Bounded in depth: an error body nested 10,000 levels deep is still just an error.
        body = jsonio.loads_pruned(response.content)
    except ValueError:
        return None
    if isinstance(body, str):
        return clean_detail(body, secrets)
    if not isinstance(body, dict):
        return None
    for key in ("message", "errorMessage", "error_description", "detail", "error"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return clean_detail(value, secrets)
    return None


def wait_seconds(response: requests.Response) -> float | None:
    """How long QFlow asks us to wait: X-RateLimit-ToWait-Sec, else Retry-After."""
    for header in ("X-RateLimit-ToWait-Sec", "Retry-After"):
        value = response.headers.get(header)
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return None


def error_for_response(
    response: requests.Response, *, maybe_accepted: bool = False, secrets: tuple[str, ...] = ()
) -> QflowError:
    status = response.status_code
    detail = qflow_message(response, secrets)
    suffix = f": {detail}" if detail else ""
    kwargs: dict[str, Any] = {"status_code": status, "detail": detail}
    if status == 401:
        return QflowAuthError(f"QFlow refused the credentials (HTTP 401){suffix}", **kwargs)
    if status == 403:
        return QflowForbidden(f"QFlow denied access (HTTP 403){suffix}", **kwargs)
    if status == 404:
        return QflowNotFound(f"not found in QFlow (HTTP 404){suffix}", **kwargs)
    if status in RATE_LIMIT_STATUSES:
        wait = wait_seconds(response)
        when = f"; retry in {wait:.0f} s" if wait is not None else ""
        return QflowRateLimited(
            f"QFlow rate limit reached (HTTP {status}){when}{suffix}", wait_seconds=wait, **kwargs
        )
    if status >= 500:
        return QflowUnavailable(
            f"QFlow is unavailable (HTTP {status}){suffix}", maybe_accepted=maybe_accepted, **kwargs
        )
    if 400 <= status < 500:
        return QflowRequestRejected(f"QFlow rejected the request (HTTP {status}){suffix}", **kwargs)
    return QflowBadResponse(f"unexpected HTTP {status} from QFlow", **kwargs)


def decode_json(response: requests.Response, what: str) -> Any:
    """The JSON body of a successful response, or QflowBadResponse.

    Records (executions, steps, workflows, lists of them) are kept even when part of them is
    nested deeper than jsonio.MAX_DEPTH: that part is replaced by jsonio.PRUNED, so one
    hostile record neither breaks a page nor stops the sync. Read once, with orjson.
    """
    content_type = response.headers.get("Content-Type", "").lower()
    if "html" in content_type:
        # A proxy or login page answering in QFlow's place.
        raise QflowBadResponse(
            f"QFlow sent an HTML page instead of {what}", status_code=response.status_code
        )
    try:
        return jsonio.loads_pruned(response.content)
    except ValueError:
        message = not_json_message(response.content[:512].decode("utf-8", "replace"), what)
        raise QflowBadResponse(message, status_code=response.status_code) from None
