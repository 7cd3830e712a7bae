"""People, not UUIDs: QFlow user ids → the names the team knows (QflowUser)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import DatabaseError

from qflowui.mirror.models import QflowUser

logger = logging.getLogger(__name__)

API_USER_NAME = "qflowui (API user)"


def names_for(user_ids: Iterable[str]) -> dict[str, str]:
    """Display names of these QFlow user ids (one query); unknown ids are left out."""
    ids = {i for i in user_ids if i}
    if not ids:
        return {}
    return dict(QflowUser.objects.filter(user_id__in=ids).values_list("user_id", "display_name"))


def remember_api_user(user_id: str) -> None:
    """The user id on an execution qflowui started is qflowui's own API user: name it, once.
    A name staff entered is never overwritten."""
    if not user_id:
        return
    try:
        QflowUser.objects.get_or_create(
            user_id=user_id[:200],
            defaults={"display_name": API_USER_NAME, "source": QflowUser.API_USER},
        )
    except DatabaseError:  # a race with another process: the row is there either way
        logger.info("QFlow user %s: already being recorded", user_id[:12])
