"""Mask secrets in anything that came from QFlow, before it is stored, shown or logged.

Two rules, applied at any depth:
- a value under a sensitive key (credentials, secret, token, password, api key,
  authorization, private key, client secret ... any case, any separator) is replaced;
  inside a sensitive container, identifiers that are not secrets (ARNs, account ids,
  connector ids, types) stay visible so an analyst can still tell which account ran;
- a string that looks like a secret wherever it stands (a JWT, a PEM private key, an
  AWS secret access key, a bearer token) has that part replaced.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "********"

_SENSITIVE_PARTS = (
    "credential",
    "secret",
    "token",
    "password",
    "passwd",
    "passphrase",
    "apikey",
    "authorization",
    "privatekey",
    "clientsecret",
    "sessionkey",
    "signature",
    "cookie",
)
# Inside a masked container these keys name identifiers, not secrets.
_VISIBLE_INSIDE_SECRET = frozenset(
    {
        "type",
        "arn",
        "rolearn",
        "account",
        "accountid",
        "connectorid",
        "qflowconnectorid",
        "portaluuid",
        "ismigrated",
        "region",
        "name",
        "id",
        "tenantid",
        "subscriptionid",
        "projectid",
        "cloudtype",
        "accesskeyid",
        "status",
        "createdate",
        "username",
    }
)
_NOT_SENSITIVE = frozenset({"tokens", "nexttoken", "tokencount", "accesskeyid"})

_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)",
    re.DOTALL,
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
# 40 characters of base64 with upper, lower and a digit or symbol: an AWS secret access key.
_AWS_SECRET = re.compile(
    r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=]))"
    r"(?=[^ ]*[A-Z])(?=[^ ]*[a-z])(?=[^ ]*[0-9/+])[A-Za-z0-9/+=]{40}"
)
_ARN = re.compile(r"^arn:[a-z0-9-]+:")
_ACCOUNT_ID = re.compile(r"^\d{12}$")


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def is_sensitive_key(key: str) -> bool:
    norm = _norm(key)
    if norm in _NOT_SENSITIVE:
        return False
    return any(part in norm for part in _SENSITIVE_PARTS)


def mask_text(text: str) -> str:
    """Replace the parts of a free string that look like secrets."""
    if len(text) < 20:
        return text
    text = _PEM.sub(MASK, text)
    text = _JWT.sub(MASK, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _AWS_SECRET.sub(MASK, text)


def _mask_secret_value(value: Any) -> Any:
    """A value under a sensitive key: hide it, but keep identifiers inside containers."""
    if isinstance(value, dict):
        return {
            k: (mask(v) if _norm(str(k)) in _VISIBLE_INSIDE_SECRET else _mask_secret_value(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask_secret_value(v) for v in value]
    if value is None or isinstance(value, bool) or value == "" or value == []:
        return value
    if isinstance(value, str) and (
        value == MASK or set(value) == {"*"} or _ARN.match(value) or _ACCOUNT_ID.match(value)
    ):
        return value
    return MASK


def mask(value: Any) -> Any:
    """A copy of `value` (JSON-like) with every secret replaced by MASK."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        key_named = value.get("key") if isinstance(value.get("key"), str) else None
        for k, v in value.items():
            if isinstance(k, str) and is_sensitive_key(k):
                out[k] = _mask_secret_value(v)
            elif k == "value" and key_named is not None and is_sensitive_key(key_named):
                # The {"key": "password", "value": ...} form of variables.
                out[k] = _mask_secret_value(v)
            else:
                out[k] = mask(v)
        return out
    if isinstance(value, list):
        return [mask(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def mask_variable_strings(items: list[Any]) -> list[Any]:
    """Execution variables come as ["region=us-east-1", ...]: mask the sensitive ones."""
    out = []
    for item in items:
        if isinstance(item, str) and "=" in item:
            key, _, val = item.partition("=")
            out.append(f"{key}={MASK}" if is_sensitive_key(key) and val else mask_text(item))
        else:
            out.append(mask(item))
    return out
