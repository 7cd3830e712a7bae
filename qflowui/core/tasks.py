"""Small tasks that prove the worker is alive."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="core.ping")
def ping(token: str) -> str:
    """Echo a token back: a round trip through broker and worker."""
    return f"pong:{token}"
