"""Is Celery beat running? Beat records a heartbeat row whenever it sends a scheduled task.

Beat drives the syncs, and rescues runs whose messages were lost. When it stops nothing
errors: things only stop happening. So beat itself writes "beat ran at" (a database row,
seen by every web process, unlike a per-process cache), and /readyz and the page header say
when no tick came for 3 of its shortest intervals. Before the first tick ever (a fresh
install) there is nothing to say.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from qflowui.runs.models import Heartbeat

logger = logging.getLogger(__name__)

BEAT = "beat"
MISSED_TICKS = 3
_WRITE_EVERY = 10.0  # seconds: beat sends several tasks at once; one row write is enough
_last_write = 0.0


def beat_interval() -> float:
    """Beat's shortest schedule interval in seconds (the runs sweep: 30 s)."""
    intervals = []
    for entry in (getattr(settings, "CELERY_BEAT_SCHEDULE", None) or {}).values():
        schedule = entry.get("schedule")
        seconds = schedule.total_seconds() if isinstance(schedule, timedelta) else schedule
        if isinstance(seconds, int | float) and seconds > 0:
            intervals.append(float(seconds))
    return min(intervals, default=30.0)


def stale_after() -> timedelta:
    """3 missed ticks (90 s with the 30 s sweep); never less than 3 row writes apart."""
    return timedelta(seconds=MISSED_TICKS * max(beat_interval(), _WRITE_EVERY))


def beat_tick(*, force: bool = False) -> None:
    """Record that beat is alive now (called in the beat process; never raises)."""
    global _last_write
    if not force and time.monotonic() - _last_write < _WRITE_EVERY:
        return
    try:
        Heartbeat.objects.update_or_create(name=BEAT, defaults={"at": timezone.now()})
        _last_write = time.monotonic()
    except Exception:  # a heartbeat must never stop beat from sending tasks
        logger.warning("could not record beat's heartbeat", exc_info=True)


@dataclass(frozen=True)
class BeatStatus:
    last: datetime | None  # None: beat never ran against this database

    @property
    def stale(self) -> bool:
        return self.last is not None and timezone.now() - self.last > stale_after()


def beat_status() -> BeatStatus:
    last = Heartbeat.objects.filter(name=BEAT).values_list("at", flat=True).first()
    return BeatStatus(last=last)
