"""The shared cache on Redis: Django's RedisCache, with two differences.

- ``clear()`` deletes our keys only (those under KEY_PREFIX), never the whole Redis
  database, which may also hold the Celery broker's queues or another deployment's keys.
- Redis being down or slow never breaks a page: reads miss, writes are dropped, ``add``
  answers True (a claim is granted: at worst two viewers fetch the same thing), and after
  a failure this process leaves Redis alone for RETRY_AFTER_SECONDS instead of paying a
  socket timeout on every call. ``incr``/``decr`` still raise: their callers need a number.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5.0
_CLEAR_BATCH = 500

# Per process and Redis location; Django builds one cache object per thread.
_down_until: dict[str, float] = {}
_down_lock = threading.Lock()


class RedisCache(DjangoRedisCache):
    def _location(self) -> str:
        return ",".join(self._servers)

    def _guarded(self, fallback: Any, call: Any, *args: Any, **kwargs: Any) -> Any:
        location = self._location()
        if time.monotonic() < _down_until.get(location, 0.0):
            return fallback
        try:
            return call(*args, **kwargs)
        except RedisError as exc:
            with _down_lock:
                first = time.monotonic() >= _down_until.get(location, 0.0)
                _down_until[location] = time.monotonic() + RETRY_AFTER_SECONDS
            if first:
                logger.warning(
                    "cache: Redis unreachable (%s); working without it for %.0f s",
                    type(exc).__name__,
                    RETRY_AFTER_SECONDS,
                )
            return fallback

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self._guarded(default, super().get, key, default, version)

    def get_many(self, keys: Any, version: int | None = None) -> dict[Any, Any]:
        return self._guarded({}, super().get_many, keys, version)

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._guarded(False, super().has_key, key, version)

    def add(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return self._guarded(True, super().add, key, value, timeout, version)

    def set(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        self._guarded(None, super().set, key, value, timeout, version)

    def set_many(
        self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        return self._guarded(list(data), super().set_many, data, timeout, version)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._guarded(False, super().touch, key, timeout, version)

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._guarded(False, super().delete, key, version)

    def delete_many(self, keys: Any, version: int | None = None) -> None:
        self._guarded(None, super().delete_many, keys, version)

    def clear(self) -> bool:
        """Delete every key of ours (KEY_PREFIX), and nothing else."""
        if not self.key_prefix:
            return bool(self._guarded(False, super().clear))
        return bool(self._guarded(False, self._clear_prefixed))

    def _clear_prefixed(self) -> bool:
        client = self._cache.get_client(None, write=True)
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{self.key_prefix}:*", count=_CLEAR_BATCH):
            batch.append(key)
            if len(batch) >= _CLEAR_BATCH:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
        return True
