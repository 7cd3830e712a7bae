"""Client for the Qualys Flow (QFlow) public API.

``client_from_settings()`` builds a :class:`QflowClient` from Django settings;
records are in :mod:`.types`, errors in :mod:`.errors`, and the pure JSON
parsers (shared with the mirror and the tests) in :mod:`.parse`.
"""

from __future__ import annotations

from .client import QflowClient, client_from_settings

__all__ = ["QflowClient", "client_from_settings"]
