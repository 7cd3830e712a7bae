"""The user's own preferences: the time zone times are shown in."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from qflowui.accounts.forms import TimezoneForm
from qflowui.accounts.models import Preference

FALLBACK_NEXT = "/executions/"


@require_http_methods(["GET", "POST"])
def timezone_set(request: HttpRequest) -> HttpResponse:
    """GET: the full list of zones. POST: save the choice and go back to `next`."""
    if request.method == "POST":
        form = TimezoneForm(request.POST)
        if form.is_valid():
            Preference.objects.update_or_create(
                user=request.user, defaults={"timezone": form.cleaned_data["timezone"]}
            )
            messages.success(request, f"Times are now shown in {form.cleaned_data['timezone']}.")
            return HttpResponseRedirect(_safe_next(request, form.cleaned_data.get("next", "")))
    else:
        form = TimezoneForm(
            initial={
                "timezone": timezone.get_current_timezone_name(),
                "next": request.GET.get("next", ""),
            }
        )
    return render(
        request, "accounts/timezone.html", {"form": form, "zones": TimezoneForm.all_choices()}
    )


def _safe_next(request: HttpRequest, target: str) -> str:
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return FALLBACK_NEXT
