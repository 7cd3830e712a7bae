"""The evidence bundle of one execution (issue 12). Stub: filled in by the evidence work."""

from __future__ import annotations

import uuid

from django.http import Http404, HttpRequest, HttpResponse


def evidence_zip(request: HttpRequest, execution_id: uuid.UUID) -> HttpResponse:
    raise Http404("not built yet")
