"""A version of the triage states, for caches built on them (the executions list's counts
under a `triage=` filter). Triage edits are not mirror writes: the mirror's version does not
see them, so every change of a state bumps this one, after its commit."""

from __future__ import annotations

import uuid

from django.core.cache import cache
from django.db import transaction

_KEY = "triage:version"


def triage_version() -> str:
    """The current version: a cache read, never a query ("0" until the first change)."""
    return cache.get(_KEY) or "0"


def triage_changed() -> None:
    """Call inside the transaction that changes a state: the version moves once it commits."""
    transaction.on_commit(lambda: cache.set(_KEY, uuid.uuid4().hex, None))
