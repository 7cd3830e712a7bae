"""Log lines carry no secret and no raw control character from upstream text.

A hostile node id or error message holding CR/LF could forge a second log line, and an
ANSI escape could rewrite a terminal; both are escaped. Secrets are masked with the same
rules as everything else (qflowui.core.masking).

The rewrite happens where records are made (a log record factory installed when Django
starts), not in one handler: then every handler sees the same safe record — the console,
Celery's worker log, and anything an operator adds (a log shipper, pytest's caplog).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from qflowui.core.masking import mask_free_text

# C0 controls but tab, DEL, and C1 controls (the 8-bit ESC/CSI forms).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_INSTALLED = "_qflowui_safe"


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    return {"\n": "\\n", "\r": "\\r"}.get(char, f"\\x{ord(char):02x}")


def log_safe(text: str) -> str:
    """`text` with secrets masked and control characters escaped, fit for one log line."""
    return _CONTROL.sub(_escape, mask_free_text(text))


def sanitize(record: logging.LogRecord) -> logging.LogRecord:
    """Merge the arguments into the message and make it (and any traceback) safe."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format string must not lose the record
        message = str(record.msg)
    record.msg = log_safe(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        # Keep the traceback's own line breaks; escape every other control character.
        record.exc_text = "\n".join(
            _CONTROL.sub(_escape, mask_free_text(line)) for line in text.split("\n")
        )
    return record


def install() -> None:
    """Wrap the process's log record factory once (idempotent)."""
    current = logging.getLogRecordFactory()
    if getattr(current, _INSTALLED, False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return sanitize(current(*args, **kwargs))

    setattr(factory, _INSTALLED, True)
    logging.setLogRecordFactory(factory)
