"""Is the Celery broker reachable? Used by /readyz and by callers that enqueue."""

from __future__ import annotations

import logging

from qflowui.celery import app, ensure_broker_folders

logger = logging.getLogger(__name__)


def broker_reachable(timeout: float = 2.0) -> bool:
    ensure_broker_folders()
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        logger.warning("broker unreachable")
        return False
