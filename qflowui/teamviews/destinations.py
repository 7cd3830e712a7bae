"""Alert destinations: Apprise URLs, which hold secrets.

Stored encrypted (Fernet, keyed from SECRET_KEY); shown only masked
(`json://127.0.0.1:8081/…`: scheme and host, never user info, path or query — Slack and
Teams tokens are path segments, and a host that is not a host name is a token too). While
apprise reads or sends a URL, its log lines (and urllib3's) have the URL's parts masked
before any handler sees them; apprise's "Unparseable URL <the URL>" error included.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import ipaddress
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import apprise
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from qflowui.core.masking import MASK, mask_text

MAX_URL_LENGTH = 2000
ANSWER_LENGTH = 2000
# Generic webhooks go wherever the URL says: their host is checked (see allowed_host).
WEBHOOK_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})
_LOGGERS = ("apprise", "urllib3.connectionpool", "requests_oauthlib")
_secrets: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "teamviews_destination_secrets", default=()
)


class DestinationError(ValueError):
    """A URL we refuse, with a message fit for the user (never the URL itself)."""


# --- encryption -------------------------------------------------------------------------


def _fernet_for(key: str) -> Fernet:
    digest = hashlib.sha256(b"qflowui.teamviews.destination\0" + key.encode())
    return Fernet(base64.urlsafe_b64encode(digest.digest()))


def _fernet() -> MultiFernet:
    """Encrypts with SECRET_KEY; decrypts with it or any of SECRET_KEY_FALLBACKS (a rotated
    key keeps the destinations stored under the old one readable)."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet_for(key) for key in keys])


def encrypt(url: str) -> str:
    return _fernet().encrypt(url.encode()).decode()


def decrypt(token: str) -> str:
    """The URL; DestinationError when SECRET_KEY changed since it was stored."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        raise DestinationError(
            "The destination cannot be read (the secret key changed and the old one is not"
            " in DJANGO_SECRET_KEY_FALLBACKS): enter it again."
        ) from None


# --- masking ------------------------------------------------------------------------------


def _host_like(host: str) -> bool:
    if host == "localhost" or "." in host:
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def shown(url: str) -> str:
    """The URL as any page, log line or audit row may show it."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "(not a URL)"
    scheme = parts.scheme.lower()[:20] or "?"
    where = host if _host_like(host) else ("…" if host else "")
    if where and port:
        where = f"{where}:{port}"
    user = "…@" if "@" in parts.netloc else ""
    rest = "/…" if parts.path.strip("/") or parts.query or parts.fragment else ""
    if where == "…":
        return f"{scheme}://…"
    return f"{scheme}://{user}{where}{rest}"[:300]


def _fragments(url: str) -> tuple[str, ...]:
    """Every part of the URL that may be a secret, to be masked in log lines."""
    out = {url, url.strip()}
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return tuple(sorted(out, key=len, reverse=True))
    userinfo = parts.netloc.rpartition("@")[0]
    out.update(userinfo.split(":"))
    host = parts.hostname or ""
    if host and not _host_like(host):
        out.add(host)
    for piece in [*parts.path.split("/"), *parts.fragment.split("/")]:
        out.add(piece)
    for pair in parts.query.split("&"):
        out.add(pair.partition("=")[2])
    out |= {unquote(p) for p in list(out)}
    # Short pieces ("json", "a") are no secrets and would mangle every line.
    return tuple(sorted((p for p in out if len(p) >= 4), key=len, reverse=True))


class _MaskDestination(logging.Filter):
    """Masks the current destination's parts in apprise's and urllib3's log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        pieces = _secrets.get()
        if not pieces:
            return True
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record: let logging report it, unmasked args dropped
            text = str(record.msg)
        for piece in pieces:
            text = text.replace(piece, MASK)
        record.msg, record.args = text, ()
        return True


def install_log_filter() -> None:
    """Once per process (AppConfig.ready)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _MaskDestination) for f in logger.filters):
            logger.addFilter(_MaskDestination())


@contextmanager
def _quiet(url: str) -> Iterator[None]:
    token = _secrets.set(_fragments(url))
    try:
        yield
    finally:
        _secrets.reset(token)


# --- checking -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    url: str
    shown: str
    service: str  # apprise's name for it: "Slack", "JSON", "E-Mail", …


def check(url: str) -> Checked:
    """A URL apprise can read and we may send to; DestinationError (a clear message) else."""
    url = (url or "").strip()
    if not url:
        raise DestinationError("Enter the destination: an Apprise URL.")
    if len(url) > MAX_URL_LENGTH:
        raise DestinationError(f"The URL is too long (at most {MAX_URL_LENGTH} characters).")
    with _quiet(url):
        plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        raise DestinationError(
            "Apprise cannot read this URL: check it against the service's URL format "
            "(e.g. slack://TokenA/TokenB/TokenC/#channel, msteams://…, mailtos://user:pass@host, "
            "json://host/path)."
        )
    allowed_host(urlsplit(url).scheme.lower(), getattr(plugin, "host", None) or "")
    return Checked(url=url, shown=shown(url), service=str(plugin.service_name or "")[:100])


def allowed_host(scheme: str, host: str) -> None:
    """Generic webhooks (json://, jsons://, xml://, form://) and any URL whose host is an IP
    address may not reach loopback, private, link-local or reserved addresses (the app's
    own network) unless the host is in QFLOWUI_ALERT_ALLOWED_HOSTS."""
    host = host.strip("[]").lower()
    if not host or host in settings.QFLOWUI_ALERT_ALLOWED_HOSTS:
        return
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if scheme not in WEBHOOK_SCHEMES:
            return
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            raise DestinationError(f"The host {host} cannot be resolved.") from None
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:
        if not address.is_global or address.is_multicast:
            raise DestinationError(
                f"{host} is an internal address ({address}): alerts may not go there unless "
                "an administrator lists it in QFLOWUI_ALERT_ALLOWED_HOSTS."
            )


# --- sending --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    ok: bool
    log: str  # what apprise said (the destination's answer among it), masked


def send(url: str, *, title: str, body: str, verbose: bool = False) -> Answer:
    """Send one message. Never raises for the destination's faults: they are the answer."""
    level = logging.DEBUG if verbose else logging.INFO
    own = logging.getLogger("apprise")
    # apprise's lines go to the capture only; the caller logs one masked line of its own.
    propagate, own.propagate = own.propagate, False
    with _quiet(url), apprise.LogCapture(level=level, fmt="%(levelname)s %(message)s") as out:
        try:
            notifier = apprise.Apprise()
            ok = notifier.add(url) and bool(
                notifier.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT)
            )
        except Exception as exc:  # noqa: BLE001 - a plugin's bug must not break the alert pass
            logging.getLogger("apprise").error("sending failed: %s", type(exc).__name__)
            ok = False
        finally:
            own.propagate = propagate
        log = out.getvalue()
    return Answer(ok=ok, log=_clean(log, url))


def _clean(log: str, url: str) -> str:
    for piece in _fragments(url):
        log = log.replace(piece, MASK)
    log = mask_text(log.strip())
    return log if len(log) <= ANSWER_LENGTH else log[: ANSWER_LENGTH - 1] + "…"


def summary(answer: Answer) -> str:
    """The answer's last warning or error line: what a failing destination said."""
    lines = [line for line in answer.log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    text = lines[-1].split(" ", 1)[-1] if lines else "The destination did not accept it."
    return text[:500]
