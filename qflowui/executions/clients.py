"""QFlow clients of the execution pages: the page budget for what a user waits for, the task
budget for the payload task, built lazily so a fully cached page never fetches a token."""

from __future__ import annotations

from collections.abc import Callable

from qflowui.qflow import QflowClient, client_from_settings

ClientFactory = Callable[[], QflowClient]


def page_client() -> QflowClient:
    """For calls a user waits for: QFLOW_PAGE_BUDGET_SECONDS in all, at most one retry."""
    return client_from_settings(purpose="page")


def task_client() -> QflowClient:
    """For the payload task: longer timeouts, nobody is holding a web thread for it."""
    return client_from_settings(purpose="task")


class Lazy:
    """Builds the client on first use, so a fully cached page never fetches a token."""

    def __init__(self, factory: ClientFactory) -> None:
        self._factory = factory
        self._client: QflowClient | None = None

    def __call__(self) -> QflowClient:
        if self._client is None:
            self._client = self._factory()
        return self._client

    @property
    def calls(self) -> int:
        return self._client.calls if self._client is not None else 0
