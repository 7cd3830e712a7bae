"""HS256 JWTs for the simulator's /auth/oidc, signed with a key derived from SECRET_KEY.

Stateless on purpose: any process of the app can verify a token another one issued.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
import uuid

from django.utils.crypto import salted_hmac

_SALT = "qflowui.simulator.jwt"
ISSUER = "qflowui-simulator"

VALID = "valid"
EXPIRED = "expired"
INVALID = "invalid"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(signing_input: str) -> str:
    # salted_hmac keys HMAC-SHA256 with sha256(salt + SECRET_KEY): a plain HS256 key.
    digest = salted_hmac(_SALT, signing_input, algorithm="sha256").digest()
    return _b64(digest)


def issue(subject: str, ttl_seconds: float, *, now: float | None = None) -> str:
    """A signed token for `subject` that expires `ttl_seconds` from now (may be negative)."""
    issued = time.time() if now is None else now
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "iat": int(issued),
        "exp": int(issued + ttl_seconds),
        "jti": str(uuid.uuid4()),
        "permissions": ["Qualys Flow Access"],
    }
    signing_input = (
        f"{_b64(json.dumps(header, separators=(',', ':')).encode())}."
        f"{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
    )
    return f"{signing_input}.{_sign(signing_input)}"


def check(token: str, *, now: float | None = None) -> str:
    """VALID, EXPIRED (well signed but past `exp`) or INVALID."""
    parts = token.split(".")
    if len(parts) != 3:
        return INVALID
    signing_input = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_sign(signing_input), parts[2]):
        return INVALID
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, binascii.Error):
        return INVALID
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        return INVALID
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        return INVALID
    return VALID if (time.time() if now is None else now) < exp else EXPIRED
