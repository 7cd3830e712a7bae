"""Log line formats: plain text (the default) or one JSON object per line (LOG_FORMAT=json).

Both format records that qflowui.core.logsafe already made safe where they were created
(secrets masked, control characters escaped) and that carry ``request_id`` and ``user``
(qflowui.core.requestid). A record made some other way (before Django set the factories
up) is made safe here, so no formatter ever writes a raw secret or a forged line.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s] %(message)s"


def _made_safe(record: logging.LogRecord) -> logging.LogRecord:
    if not getattr(record, "qflowui_safe", False):
        from qflowui.core.logsafe import sanitize

        sanitize(record)
        record.qflowui_safe = True
    return record


class PlainFormatter(logging.Formatter):
    """``time LEVEL logger [req=<id>] message``; ``-`` outside a request or task."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, **kwargs: Any) -> None:
        super().__init__(fmt or PLAIN_FORMAT, datefmt, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        _made_safe(record)
        if getattr(record, "request_id", None) is None:
            record.request_id = "-"
            try:
                return super().format(record)
            finally:
                record.request_id = None
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, request_id,
    user, and exception (the traceback's text) when there is one. Newlines inside the
    message or the traceback are JSON escapes: a record is always exactly one line."""

    def format(self, record: logging.LogRecord) -> str:
        _made_safe(record)
        created = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "user": getattr(record, "user", None),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()
