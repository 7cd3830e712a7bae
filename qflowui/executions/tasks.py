"""Celery tasks of the execution pages: thin interfaces over qflowui.executions.services.

`executions.fetch_payload` fetches a step payload that may be slow, so that no web thread
waits on QFlow for it; the page polls the fetch state (services.payload_poll). Workers also
say, every few seconds, that they are alive: a page enqueues a fetch only when some worker
will run it, and otherwise fetches itself within the page budget.
"""

from __future__ import annotations

import logging
import threading

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready, worker_shutdown
from django.core.cache import cache

from qflowui.executions import services

logger = logging.getLogger(__name__)

# The task client's budget (qflowui.qflow.client.TASK_BUDGET_SECONDS, 45 s) fits under the
# soft limit; the hard limit stays under the claim (services.PAYLOAD_CLAIM_SECONDS, 90 s).
SOFT_TIME_LIMIT_SECONDS = 60
TIME_LIMIT_SECONDS = 75


@shared_task(
    name="executions.fetch_payload",
    ignore_result=True,
    # A lost fetch is not worth redoing: the page asks again once the claim expires.
    acks_late=False,
    soft_time_limit=SOFT_TIME_LIMIT_SECONDS,
    time_limit=TIME_LIMIT_SECONDS,
)
def fetch_payload(execution_id: str, node_id: str, kind: str) -> str:
    """Fetch one step's input or output from QFlow and store it masked. Ids only."""
    try:
        return services.payload_fetch(str(execution_id), str(node_id), str(kind))
    except SoftTimeLimitExceeded:
        services.payload_fetch_abandoned(
            execution_id, node_id, kind, "QFlow took too long to send it; try again later"
        )
        return services.FAILED
    except Exception:
        logger.exception("payload %s/%s/%s: the fetch failed", execution_id, node_id, kind)
        services.payload_fetch_abandoned(
            execution_id, node_id, kind, "the fetch failed; try again later"
        )
        raise


# --- heartbeat -------------------------------------------------------------------------------

_stop = threading.Event()


def _beat(queues: list[str]) -> None:
    while True:
        try:
            for queue in queues:
                cache.set(services.worker_alive_key(queue), 1, services.WORKER_ALIVE_SECONDS)
        except Exception:  # noqa: BLE001 - a cache outage must not kill the worker
            logger.warning("could not tell the web processes this worker is alive")
        if _stop.wait(services.WORKER_HEARTBEAT_SECONDS):
            return


@worker_ready.connect
def _start_heartbeat(sender: object = None, **_: object) -> None:
    consumer = getattr(sender, "app", None)
    try:
        queues = sorted(consumer.amqp.queues.consume_from) if consumer is not None else []
    except Exception:  # noqa: BLE001 - no queue names: announce the default queue only
        queues = []
    queues = queues or [services.default_queue()]
    _stop.clear()
    threading.Thread(target=_beat, args=(queues,), name="qflowui-heartbeat", daemon=True).start()


@worker_shutdown.connect
def _stop_heartbeat(**_: object) -> None:
    _stop.set()
