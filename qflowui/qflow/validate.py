"""Checks on everything that goes into a QFlow URL, done before any request is sent."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from .errors import QflowConfigError, QflowInvalidId

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Characters that could change the meaning of a URL path, plus whitespace and controls.
_UNSAFE_NODE_CHARS = re.compile(r"[/\\?#%\s\x00-\x1f\x7f]")
MAX_NODE_ID_LENGTH = 200


def _shown(value: Any) -> str:
    """A short, quoted form of a user-supplied value for an error message."""
    text = value if isinstance(value, str) else str(value)
    return repr(text[:60] + ("…" if len(text) > 60 else ""))


def check_uuid(value: Any, what: str) -> str:
    """Return ``value`` as a string if it is a canonical UUID, else raise QflowInvalidId."""
    text = str(value) if not isinstance(value, str) else value
    if not _UUID.fullmatch(text):
        raise QflowInvalidId(f"{what} id {_shown(value)} is not a UUID")
    return text


def check_node_id(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise QflowInvalidId("node id must be a non-empty string")
    if len(value) > MAX_NODE_ID_LENGTH:
        raise QflowInvalidId(f"node id is longer than {MAX_NODE_ID_LENGTH} characters")
    if ".." in value or _UNSAFE_NODE_CHARS.search(value):
        raise QflowInvalidId(f"node id {_shown(value)} contains characters not allowed in a URL")
    return value


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str, allow_http_hosts: Iterable[str] = ()) -> str:
    """HTTPS only, except plain HTTP to this machine (the simulator, tests) or to a host named
    in ``allow_http_hosts`` (QFLOW_ALLOW_HTTP_HOSTS: the Docker demo's simulator service)."""
    if not isinstance(base_url, str) or not base_url.strip():
        raise QflowConfigError("QFlow base URL is empty")
    base_url = base_url.strip().rstrip("/")
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise QflowConfigError("QFlow base URL is not a valid URL") from exc
    # Messages name the scheme and host only: the URL itself might hold a password.
    if parts.username or parts.password or parts.query or parts.fragment:
        raise QflowConfigError("QFlow base URL must not contain credentials, a query or a fragment")
    if parts.scheme not in {"http", "https"} or not host:
        raise QflowConfigError(f"QFlow base URL must be an https URL, got scheme {parts.scheme!r}")
    allowed = {name.strip().lower() for name in allow_http_hosts if name.strip()}
    if parts.scheme == "http" and not is_loopback(host) and host.lower() not in allowed:
        raise QflowConfigError(
            f"QFlow base URL must use https (plain http is allowed only for localhost), got {host}"
        )
    return base_url
