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

import functools
import json
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


def mask_variable_strings(items: list[Any]) -> list[Any]:
    """Execution variables come as ["region=us-east-1", ...]: mask the sensitive ones."""
    out = []
    for item in items:
        if isinstance(item, str) and "=" in item:
            key, _, val = item.partition("=")
            out.append(f"{key}={MASK}" if is_sensitive_key(key) and val else mask_free_text(item))
        else:
            out.append(mask(item))
    return out


# --- the payload masker: the rules above, stricter and fast on big payloads -------------
#
# On top of the walk above: secrets inside strings that hold JSON (QFlow's parseJson=false
# form), `password=...` inside free text (errors, tags), a memoized key check, and a cheap
# pre-check (`nothing_to_mask`) that spares big inventories the walk.

# Searched in the lower-cased text: IGNORECASE makes Python's re several times slower.
_KEY_HINT = re.compile(
    r"credential|secret|token|passw|passphrase|api[_-]?key|authorization|private[_-]?key"
    r"|session[_-]?key|cookie|signature"
)
_KEY_VALUE = re.compile(
    r"""(?i)(?<![\w.-])(?P<key>[\w.-]{0,40}?(?:credential|secret|token|passw(?:or)?d|passphrase|api[_-]?key"""
    r"""|authorization|private[_-]?key|session[_-]?key|cookie|signature)[\w.-]{0,40})"""
    r"""(?P<sep>["']?\s*[:=]\s*)(?P<quote>["']?)(?P<value>[^\s"',;&}\]]+)"""
)


# A payload's JSON text lower-cased, with every byte but [a-z0-9] and the quote deleted, holds
# the normalized form of every key and string (is_sensitive_key's normalization), and a quote
# still separates one JSON string from the next.
_SQUEEZE = bytes(b for b in range(256) if not (48 <= b <= 57 or 97 <= b <= 122 or b == 34))
_BASE64_RUN = bytes(
    97 if (48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122 or b in b"/+=") else 32
    for b in range(256)
)


def nothing_to_mask(text: str) -> bool:
    """True only if no rule of mask_payload() can change the JSON value whose text this is.

    A cheap pass over the text (~0.1 s for 10 MB) that spares the walk (~0.5 s) for the
    big inventories that hold no secret. Anything doubtful answers False: unicode escapes, an
    escaped quote (it could split a key), "eyJ", "-----", a 40-character base64 run, or a
    sensitive word anywhere inside one JSON string.
    """
    if "\\u" in text or '\\"' in text or "eyJ" in text or "-----" in text:
        return False
    squeezed = text.lower().encode().translate(None, _SQUEEZE)
    if any(word in squeezed for word in _SENSITIVE_WORDS):
        return False
    return b"a" * 40 not in text.encode().translate(_BASE64_RUN)


_SENSITIVE_WORDS = tuple(word.encode() for word in (*_SENSITIVE_PARTS, "bearer", "basic", "passw"))


@functools.lru_cache(maxsize=8192)
def _sensitive(key: str) -> bool:
    return is_sensitive_key(key)


def _kv_replace(match: re.Match[str]) -> str:
    if not _sensitive(match.group("key")) or match.group("value") == MASK:
        return match.group(0)
    return f"{match.group('key')}{match.group('sep')}{match.group('quote')}{MASK}"


def mask_free_text(text: str) -> str:
    """A free string (error, tag, variable): core's rules plus `secret=...`/`"token": "..."`."""
    if not isinstance(text, str) or not text:
        return text
    size = len(text)
    low = text.lower()
    # mask_text's patterns need 40 characters, or "eyJ", "-----BEGIN", "Bearer"/"Basic".
    if size >= 40 or (
        size >= 20 and ("eyJ" in text or "-----" in text or "bearer" in low or "basic" in low)
    ):
        text = mask_text(text)
    if ("=" in text or ":" in text) and _KEY_HINT.search(low):
        text = _KEY_VALUE.sub(_kv_replace, text)
    return text


def _mask_string(text: str) -> str:
    head = text[:1] if text[:1] not in (" ", "\n", "\t") else text.lstrip()[:1]
    if head in ("{", "[") and len(text) >= 2:
        try:
            inner = json.loads(text)
        except ValueError:
            inner = None
        if isinstance(inner, dict | list):
            masked = mask_payload(inner)
            return text if masked == inner else json.dumps(masked, ensure_ascii=False)
    return mask_free_text(text)


def mask_payload(value: Any) -> Any:
    """A masked copy of a JSON value: core.masking.mask() semantics, and stricter."""
    kind = type(value)
    if kind is dict:
        named = value.get("key")
        named_sensitive = type(named) is str and _sensitive(named)
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if (type(key) is str and _sensitive(key)) or (key == "value" and named_sensitive):
                out[key] = _mask_secret_value(item)
            else:
                out[key] = _mask_item(item)
        return out
    if kind is list:
        return [_mask_item(item) for item in value]
    return _mask_item(value)


def _mask_item(item: Any) -> Any:
    # Scalars inline: payloads are mostly short strings and numbers, calls are the cost.
    kind = type(item)
    if kind is str:
        return _mask_string(item) if len(item) >= 5 else item
    if kind is dict or kind is list:
        return mask_payload(item)
    if kind in (int, float, bool) or item is None:
        return item
    return item


def mask(value: Any) -> Any:
    """A copy of `value` (JSON-like) with every secret replaced by MASK.

    Also masks `password=...` / `"token": "..."` inside free text and JSON held in strings.
    """
    return mask_payload(value)
