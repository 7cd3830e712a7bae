"""The time zones a user may pick, and the short list offered in the page header."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

DEFAULT_TIMEZONE = "UTC"

# Offered in the header's select; every other IANA zone is on the full preference page.
COMMON_TIMEZONES = (
    "UTC",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Kyiv",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
)


@lru_cache(maxsize=1)
def available() -> frozenset[str]:
    """Every IANA zone this machine knows (read once: it scans the zone database)."""
    return frozenset(zoneinfo.available_timezones()) | {DEFAULT_TIMEZONE}


def is_valid(name: str) -> bool:
    return name in available()


def header_choices(current: str) -> list[str]:
    """The header's short list, with the user's own zone in it even when it is unusual."""
    names = list(COMMON_TIMEZONES)
    if current not in names:
        names.insert(1, current)
    return names
