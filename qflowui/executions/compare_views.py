"""Two executions side by side (issue 12). Stub: filled in by the compare work."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse


def compare(request: HttpRequest) -> HttpResponse:
    raise Http404("not built yet")
