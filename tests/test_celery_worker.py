"""A real Celery worker on Redis runs a task sent from the test."""

from __future__ import annotations

import time
import uuid

import pytest
from celery.backends.redis import RedisBackend

from qflowui.celery import app
from qflowui.core.tasks import ping

pytestmark = pytest.mark.celery_worker


def test_a_real_worker_on_redis_runs_a_task_sent_from_the_test(celery_worker_process, redis_url):
    token = uuid.uuid4().hex
    with app.connection_for_write(redis_url) as conn:
        sent = ping.apply_async(
            (token,), queue=celery_worker_process.queue, connection=conn, ignore_result=False
        )
    backend = RedisBackend(app=app, url=redis_url)
    deadline = time.monotonic() + 30
    meta = backend.get_task_meta(sent.id)
    while meta["status"] != "SUCCESS" and time.monotonic() < deadline:
        time.sleep(0.1)
        meta = backend.get_task_meta(sent.id)
    assert meta["status"] == "SUCCESS"
    assert meta["result"] == f"pong:{token}"
    assert sent.id in celery_worker_process.log_path.read_text()
