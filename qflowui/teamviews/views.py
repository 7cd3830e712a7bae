"""Saved views: the navigation's list with counts, the save control's POST, each view's
page (its filters, count and alerts), edit and delete; the alerts' add, edit, delete, test.

Who: anyone with view access saves views (private by default); a private view is a 404 to
everyone but its owner and staff; only its owner or staff edit or delete it. Alerts need a
Runner or staff; a destination is shown masked to everyone, and only its owner or staff
change it or send a test.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from qflowui.accounts import access
from qflowui.accounts.audit import audit_record
from qflowui.accounts.middleware import no_access_response
from qflowui.executions.listing import workflow_choices
from qflowui.executions.views import Links, active_filters
from qflowui.teamviews import alerts, destinations
from qflowui.teamviews.forms import SavedViewForm, SubscriptionForm
from qflowui.teamviews.matching import list_url, parse_query, view_counts
from qflowui.teamviews.models import Delivery, SavedView, Subscription

RUN_PERMISSION = "runs.run_workflow"
NAV_LIMIT = 15
CHANGED_EVENT = "teamviews-changed"  # the nav reloads its list and counts on it


# --- who may do what ----------------------------------------------------------------------


def visible_views(user: Any) -> QuerySet[SavedView]:
    views = SavedView.objects.select_related("owner")
    return views if user.is_staff else views.filter(Q(owner=user) | Q(shared=True))


def _get_view(request: HttpRequest, pk: int) -> SavedView:
    view = visible_views(request.user).filter(pk=pk).first()
    if view is None:
        raise Http404("No such saved view.")
    return view


def may_edit(user: Any, view: SavedView) -> bool:
    return user.is_staff or view.owner_id == user.pk


def may_subscribe(user: Any) -> bool:
    return user.is_staff or user.has_perm(RUN_PERMISSION)


def may_manage(user: Any, subscription: Subscription) -> bool:
    return user.is_staff or subscription.owner_id == user.pk


def _get_subscription(request: HttpRequest, view: SavedView, sid: int) -> Subscription:
    subscription = view.subscriptions.filter(pk=sid).first()
    if subscription is None:
        raise Http404("No such alert.")
    if not may_manage(request.user, subscription):
        raise PermissionDenied("Only the alert's owner or staff may change it.")
    return subscription


def _data_access(view_func: Any) -> Any:
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not access.can_view(request.user):
            return no_access_response(request)
        return view_func(request, *args, **kwargs)

    wrapped.__name__ = view_func.__name__
    wrapped.__doc__ = view_func.__doc__
    return wrapped


# --- the views ------------------------------------------------------------------------------


@require_GET
@_data_access
def view_list(request: HttpRequest) -> HttpResponse:
    views = list(visible_views(request.user).annotate(alert_count=Count("subscriptions")))
    counts = view_counts([v.query for v in views])
    rows = [{"view": v, "count": counts.get(v.query, 0), "url": list_url(v.query)} for v in views]
    return render(request, "teamviews/list.html", {"rows": rows})


@require_GET
@_data_access
def nav(request: HttpRequest) -> HttpResponse:
    """The navigation's saved views with their counts: loaded after the page, cached."""
    user = request.user
    views = list(
        SavedView.objects.filter(Q(owner=user) | Q(shared=True))
        .order_by("name", "pk")
        .only("pk", "name", "query", "shared", "owner_id")[: NAV_LIMIT + 1]
    )
    more = len(views) > NAV_LIMIT
    views = views[:NAV_LIMIT]
    counts = view_counts([v.query for v in views])
    items = [
        {
            "view": v,
            "count": counts.get(v.query, 0),
            "url": list_url(v.query),
            "mine": v.owner_id == user.pk,
        }
        for v in views
    ]
    return render(request, "teamviews/nav_menu.html", {"items": items, "more": more})


@require_POST
@_data_access
def view_create(request: HttpRequest) -> HttpResponse:
    form = SavedViewForm(request.POST, owner=request.user)
    if form.is_valid():
        try:
            with transaction.atomic():
                view = SavedView.objects.create(owner=request.user, **form.cleaned_data)
        except IntegrityError:  # the same name saved twice at once
            form.add_error("name", "You already have a view with this name.")
        else:
            _audit(request, "view.created", view, shared=view.shared, query=view.query)
            if request.htmx:
                response = render(
                    request, "teamviews/_save_view.html#saved", {"saved": view, "form": form}
                )
                return trigger_client_event(response, CHANGED_EVENT)
            messages.success(request, f"Saved “{view.name}”.")
            return HttpResponseRedirect(reverse("teamviews:detail", args=[view.pk]))
    if request.htmx:
        return render(request, "teamviews/_save_view.html#saved", {"form": form}, status=422)
    return render(request, "teamviews/edit.html", {"form": form, "view": None}, status=422)


@require_GET
@_data_access
def view_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _render_detail(request, _get_view(request, pk), SubscriptionForm())


def _render_detail(
    request: HttpRequest, view: SavedView, alert_form: SubscriptionForm, status: int = 200
) -> HttpResponse:
    parsed = parse_query(view.query)
    subscriptions = list(view.subscriptions.select_related("owner").order_by("created_at", "pk"))
    states: dict[tuple[int, str], int] = {}
    for sid, state, n in (
        Delivery.objects.filter(subscription__view=view)
        .values_list("subscription", "state")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        states[(sid, state)] = n
    user = request.user
    context = {
        "view": view,
        "count": view_counts([view.query]).get(view.query, 0),
        "url": list_url(view.query),
        # In the list's own words ("status Failed", "last 7 days", "cloud “AWS”").
        "filters": [
            f["text"]
            for f in active_filters(
                parsed.filters, Links(parsed.filters.params()), workflow_choices()
            )
        ],
        "problems": parsed.errors,
        "may_edit": may_edit(user, view),
        "may_subscribe": may_subscribe(user),
        "subscriptions": [
            {
                "s": s,
                "mine": may_manage(user, s),
                "sent": states.get((s.pk, Delivery.SENT), 0),
                "waiting": states.get((s.pk, Delivery.PENDING), 0)
                + states.get((s.pk, Delivery.SENDING), 0),
                "lost": states.get((s.pk, Delivery.UNKNOWN), 0),
            }
            for s in subscriptions
        ],
        "alert_form": alert_form,
        "now": timezone.now(),
    }
    return render(request, "teamviews/detail.html", context, status=status)


@require_http_methods(["GET", "POST"])
@_data_access
def view_edit(request: HttpRequest, pk: int) -> HttpResponse:
    view = _get_view(request, pk)
    if not may_edit(request.user, view):
        raise PermissionDenied("Only the view's owner or staff may change it.")
    if request.method == "POST":
        form = SavedViewForm(request.POST, owner=view.owner, instance=view)
        if form.is_valid():
            before = {"name": view.name, "shared": view.shared, "query": view.query}
            for name, value in form.cleaned_data.items():
                setattr(view, name, value)
            try:
                with transaction.atomic():
                    view.save()
            except IntegrityError:
                form.add_error("name", "The owner already has a view with this name.")
            else:
                _audit(request, "view.edited", view, before=before, query=view.query)
                messages.success(request, f"Saved “{view.name}”.")
                return HttpResponseRedirect(reverse("teamviews:detail", args=[view.pk]))
    else:
        form = SavedViewForm(
            initial={"name": view.name, "shared": view.shared, "query": view.query},
            owner=view.owner,
            instance=view,
        )
    status = 422 if form.is_bound else 200
    return render(request, "teamviews/edit.html", {"form": form, "view": view}, status=status)


@require_POST
@_data_access
def view_delete(request: HttpRequest, pk: int) -> HttpResponse:
    view = _get_view(request, pk)
    if not may_edit(request.user, view):
        raise PermissionDenied("Only the view's owner or staff may delete it.")
    _audit(request, "view.deleted", view, query=view.query)
    view.delete()
    messages.success(request, f"Deleted “{view.name}” and its alerts.")
    return HttpResponseRedirect(reverse("teamviews:list"))


# --- alerts ---------------------------------------------------------------------------------


@require_POST
@_data_access
def alert_create(request: HttpRequest, pk: int) -> HttpResponse:
    view = _get_view(request, pk)
    if not may_subscribe(request.user):
        raise PermissionDenied("Alerts are for Runners and staff.")
    form = SubscriptionForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, view, form, status=422)
    checked = form.cleaned_data["destination"]
    with transaction.atomic():
        subscription = Subscription.objects.create(
            view=view,
            owner=request.user,
            destination_encrypted=destinations.encrypt(checked.url),
            destination_shown=checked.shown,
            service=checked.service,
            mode=form.cleaned_data["mode"],
            active=True,
            watermark=timezone.now(),
        )
        alerts.subscription_baseline(subscription)
    _audit(
        request,
        "alert.created",
        view,
        alert=subscription.pk,
        destination=checked.shown,
        mode=subscription.mode,
    )
    messages.success(
        request,
        f"Alerts of “{view.name}” go to {checked.shown} ({checked.service}) from now on: "
        "executions already in the view are not sent.",
    )
    return HttpResponseRedirect(reverse("teamviews:detail", args=[view.pk]) + "#alerts")


@require_http_methods(["GET", "POST"])
@_data_access
def alert_edit(request: HttpRequest, pk: int, sid: int) -> HttpResponse:
    view = _get_view(request, pk)
    subscription = _get_subscription(request, view, sid)
    if request.method == "POST":
        form = SubscriptionForm(request.POST, editing=True)
        if form.is_valid():
            checked = form.cleaned_data["destination"]
            changes: dict[str, Any] = {
                "mode": form.cleaned_data["mode"],
                "active": form.cleaned_data["active"],
            }
            if checked is not None:
                changes.update(
                    destination_encrypted=destinations.encrypt(checked.url),
                    destination_shown=checked.shown,
                    service=checked.service,
                    consecutive_failures=0,
                    next_attempt_at=None,
                    last_error="",
                )
            if changes["active"] and not subscription.active:
                # Switched back on: what entered the view meanwhile is not news.
                changes["watermark"] = timezone.now()
            Subscription.objects.filter(pk=subscription.pk).update(
                **changes, updated_at=timezone.now()
            )
            _audit(
                request,
                "alert.edited",
                view,
                alert=subscription.pk,
                destination=checked.shown if checked else subscription.destination_shown,
                destination_changed=checked is not None,
                mode=changes["mode"],
                active=changes["active"],
            )
            messages.success(request, "Alert saved.")
            return HttpResponseRedirect(reverse("teamviews:detail", args=[view.pk]) + "#alerts")
    else:
        form = SubscriptionForm(
            initial={"mode": subscription.mode, "active": subscription.active}, editing=True
        )
    context = {"form": form, "view": view, "subscription": subscription}
    return render(
        request, "teamviews/alert_edit.html", context, status=422 if form.is_bound else 200
    )


@require_POST
@_data_access
def alert_delete(request: HttpRequest, pk: int, sid: int) -> HttpResponse:
    view = _get_view(request, pk)
    subscription = _get_subscription(request, view, sid)
    _audit(
        request,
        "alert.deleted",
        view,
        alert=subscription.pk,
        destination=subscription.destination_shown,
    )
    subscription.delete()
    messages.success(request, f"Alerts to {subscription.destination_shown} deleted.")
    return HttpResponseRedirect(reverse("teamviews:detail", args=[view.pk]) + "#alerts")


@require_POST
@_data_access
def alert_test(request: HttpRequest, pk: int, sid: int) -> HttpResponse:
    """Send a sample message now and show what the destination answered (masked)."""
    view = _get_view(request, pk)
    subscription = _get_subscription(request, view, sid)
    try:
        url = destinations.decrypt(subscription.destination_encrypted)
    except destinations.DestinationError as exc:
        answer = destinations.Answer(ok=False, log=str(exc))
    else:
        title, body = alerts.sample_message(view)
        answer = destinations.send(url, title=title, body=body, verbose=True)
    _audit(
        request,
        "alert.tested",
        view,
        alert=subscription.pk,
        destination=subscription.destination_shown,
        ok=answer.ok,
    )
    context = {"answer": answer, "subscription": subscription, "view": view}
    if request.htmx:
        return render(request, "teamviews/detail.html#test-answer", context)
    (messages.success if answer.ok else messages.error)(
        request,
        f"Test to {subscription.destination_shown}: "
        + ("sent." if answer.ok else "failed. ")
        + ("" if answer.ok else destinations.summary(answer)),
    )
    return HttpResponseRedirect(reverse("teamviews:detail", args=[view.pk]) + "#alerts")


def _audit(request: HttpRequest, action: str, view: SavedView, **detail: Any) -> None:
    audit_record(
        action=action,
        request=request,
        target=f"view {view.pk}: {view.name}",
        detail={"view": view.pk, "name": view.name, **detail},
    )
