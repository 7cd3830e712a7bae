"""Triage of one execution (issue 12): a state, a ticket, notes; Runners and staff change
them, Viewers read them; notes are editable by their author for 15 minutes, then
append-only; every change is in the audit log."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from qflowui.runs.models import AuditEvent
from qflowui.triage import services
from qflowui.triage.models import Triage, TriageNote, TriageState
from qflowui.triage.notes import triage_export
from tests.test_executions_list import make_execution, make_workflow
from tests.test_runs_support import *  # noqa: F403 - the fixtures runner, other_runner, runner_client
from tests.test_runs_support import runners_group  # noqa: F401 - used by the triage list tests

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


# --- helpers shared with the list, failures and browser tests -------------------------------


def page_ready(execution):
    """An execution whose page needs no call to QFlow: terminal, steps and definition known."""
    workflow = execution.workflow
    workflow.definition = {"components": []}
    workflow.save()
    execution.steps_synced_at = timezone.now()
    execution.save()
    return execution


def triage_url(execution) -> str:
    return f"/executions/{execution.pk}/triage/"


def notes_url(execution) -> str:
    return f"/executions/{execution.pk}/triage/notes/"


def note_url(execution, note) -> str:
    return f"/executions/{execution.pk}/triage/notes/{note.pk}/"


def audits(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


@pytest.fixture
def execution():
    return page_ready(make_execution(make_workflow(), status="Failed"))


# --- states and tickets -------------------------------------------------------------------


def test_the_migration_lets_runners_triage_and_not_viewers():
    runners = Group.objects.get(name="Runners")
    viewers = Group.objects.get(name="Viewers")
    assert runners.permissions.filter(codename="change_triage").exists()
    assert not viewers.permissions.filter(codename="change_triage").exists()


def test_an_execution_never_triaged_says_so(runner_client, execution):
    html = runner_client.get(f"/executions/{execution.pk}/").content.decode()
    assert 'data-triage-state=""' in html and "Not triaged" in html
    assert "No notes yet." in html
    assert not Triage.objects.exists()


@pytest.mark.parametrize("state", TriageState.values)
def test_a_runner_sets_each_state_and_it_is_audited_with_before_and_after(
    runner_client, runner, execution, state
):
    response = runner_client.post(triage_url(execution), {"state": state, "ticket": ""}, **HTMX)

    assert response.status_code == 200
    triage = Triage.objects.get(pk=execution.pk)
    assert triage.state == state and triage.updated_by == runner
    html = response.content.decode()
    assert f'data-triage-state="{state}"' in html and TriageState(state).label in html
    [event] = audits(services.STATE_CHANGED)
    assert event.actor == runner and event.target == f"execution {execution.pk}"
    assert event.detail == {"execution": str(execution.pk), "before": None, "after": state}
    assert audits(services.TICKET_CHANGED) == []  # no ticket given: no ticket change


def test_changing_state_and_ticket_audits_each_with_before_and_after(runner_client, execution):
    runner_client.post(triage_url(execution), {"state": "open", "ticket": "SEC-1"}, **HTMX)
    runner_client.post(
        triage_url(execution),
        {"state": "escalated", "ticket": "https://jira.example.com/browse/SEC-2"},
        **HTMX,
    )

    states = [e.detail for e in audits(services.STATE_CHANGED)]
    tickets = [e.detail for e in audits(services.TICKET_CHANGED)]
    ident = str(execution.pk)
    assert states == [
        {"execution": ident, "before": None, "after": "open"},
        {"execution": ident, "before": "open", "after": "escalated"},
    ]
    assert tickets == [
        {"execution": ident, "before": "", "after": "SEC-1"},
        {"execution": ident, "before": "SEC-1", "after": "https://jira.example.com/browse/SEC-2"},
    ]
    assert Triage.objects.get(pk=execution.pk).ticket == "https://jira.example.com/browse/SEC-2"


def test_saving_the_same_state_twice_changes_nothing_and_audits_once(runner_client, execution):
    data = {"state": "investigating", "ticket": "SEC-9"}
    first = runner_client.post(triage_url(execution), data, **HTMX)
    before = Triage.objects.get(pk=execution.pk).updated_at
    second = runner_client.post(triage_url(execution), data, **HTMX)

    assert "Saved." in first.content.decode()
    assert "Nothing changed." in second.content.decode()
    assert Triage.objects.get(pk=execution.pk).updated_at == before
    assert len(audits(services.STATE_CHANGED)) == 1
    assert len(audits(services.TICKET_CHANGED)) == 1


def test_only_the_ticket_changed_is_audited_as_a_ticket_change_only(runner_client, execution):
    runner_client.post(triage_url(execution), {"state": "open", "ticket": ""}, **HTMX)
    runner_client.post(triage_url(execution), {"state": "open", "ticket": "INC-77"}, **HTMX)
    assert len(audits(services.STATE_CHANGED)) == 1
    assert [e.detail["after"] for e in audits(services.TICKET_CHANGED)] == ["INC-77"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"state": "closed"}, "Unknown triage state “closed”"),
        ({"ticket": "SEC-1"}, "Choose a triage state."),
        ({"state": "open", "ticket": "x" * 501}, "at most 500 characters"),
        ({"state": "open", "ticket": "SEC-1\nSEC-2"}, "one line"),
    ],
)
def test_a_bad_state_or_ticket_is_refused_with_a_message_and_nothing_is_stored(
    runner_client, execution, data, message
):
    response = runner_client.post(triage_url(execution), data, **HTMX)
    assert response.status_code == 200  # htmx swaps the section with its message
    assert message in response.content.decode()
    assert not Triage.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="triage.").exists()
    plain = runner_client.post(triage_url(execution), data)
    assert plain.status_code == 400 and message in plain.content.decode()


def test_a_plain_form_post_goes_back_to_the_execution_with_a_message(runner_client, execution):
    response = runner_client.post(
        triage_url(execution), {"state": "resolved", "ticket": ""}, follow=True
    )
    assert response.redirect_chain[-1][0] == f"/executions/{execution.pk}/#triage"
    html = response.content.decode()
    assert "Saved." in html and 'data-triage-state="resolved"' in html


def test_staff_may_triage(client, admin_user, execution):
    client.force_login(admin_user)
    response = client.post(triage_url(execution), {"state": "escalated"}, **HTMX)
    assert response.status_code == 200
    assert Triage.objects.get(pk=execution.pk).state == "escalated"


def test_an_execution_the_dashboard_does_not_know_cannot_be_triaged(runner_client):
    url = "/executions/6f0c6a52-8a5e-4a43-9d7b-2c0c4b7f1e55/triage/"
    assert runner_client.post(url, {"state": "open"}).status_code == 404
    assert runner_client.post(url + "notes/", {"text": "hi"}).status_code == 404
    assert not Triage.objects.exists() and not TriageNote.objects.exists()


# --- who may ------------------------------------------------------------------------------


def test_viewers_see_state_ticket_and_notes_but_cannot_change_them(
    viewer_client, viewer, runner, execution
):
    Triage.objects.create(execution_id=execution.pk, state="investigating", ticket="SEC-4")
    note = TriageNote.objects.create(
        execution_id=execution.pk, author=runner, author_name="rita.runner", text="Looking."
    )

    html = viewer_client.get(f"/executions/{execution.pk}/").content.decode()
    assert 'data-triage-state="investigating"' in html and "SEC-4" in html
    assert "Looking." in html and "rita.runner" in html
    assert 'name="state"' not in html and "Add a note" not in html and "Edit</summary>" not in html
    assert "Runners and staff set the triage state" in html

    for url, data in (
        (triage_url(execution), {"state": "resolved"}),
        (notes_url(execution), {"text": "mine"}),
        (note_url(execution, note), {"text": "changed"}),
    ):
        response = viewer_client.post(url, data, **HTMX)
        assert response.status_code == 403
    assert Triage.objects.get(pk=execution.pk).state == "investigating"
    assert list(TriageNote.objects.values_list("text", flat=True)) == ["Looking."]
    denied = audits(services.DENIED)
    assert len(denied) == 3 and all(e.actor == viewer for e in denied)


def test_signed_in_users_outside_the_team_get_nothing(client, django_user_model, execution):
    outsider = django_user_model.objects.create_user(username="nobody", password="x-y-z-w-1")
    client.force_login(outsider)
    assert client.get(triage_url(execution)).status_code == 403
    assert client.post(triage_url(execution), {"state": "open"}).status_code == 403
    assert not Triage.objects.exists()


def test_anonymous_visitors_are_sent_to_the_login_page(client, execution):
    response = client.post(triage_url(execution), {"state": "open"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not Triage.objects.exists()


# --- notes --------------------------------------------------------------------------------


def test_a_note_is_kept_with_its_author_and_time_and_audited(runner_client, runner, execution):
    text = "Checked the role.\nQFLOW_1 lacks ec2:StopInstances in 123456789012."
    response = runner_client.post(notes_url(execution), {"text": text}, **HTMX)

    note = TriageNote.objects.get()
    assert note.text == text and note.author == runner and note.author_name == "rita.runner"
    html = response.content.decode()
    assert "Note added." in html
    assert f'data-note-id="{note.pk}"' in html
    # Plain text, line breaks kept (the block keeps them: white-space pre-wrap).
    assert f'<div class="note-text">{text}</div>' in html
    # The absolute time with its zone.
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", html)
    [event] = audits(services.NOTE_ADDED)
    assert event.detail == {"execution": str(execution.pk), "note": note.pk, "text": text}
    # A note alone does not triage the execution.
    assert not Triage.objects.exists()


def test_line_breaks_as_a_browser_sends_them_are_stored_once(runner_client, execution):
    runner_client.post(notes_url(execution), {"text": "one\r\ntwo"}, **HTMX)
    assert TriageNote.objects.get().text == "one\ntwo"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "The note is empty: write something first."),
        ("   \n  ", "The note is empty: write something first."),
        ("x" * 10_001, "A note holds at most 10,000 characters (this one has 10001)"),
    ],
)
def test_an_empty_or_too_long_note_is_refused_clearly_and_what_was_typed_stays(
    runner_client, execution, text, message
):
    response = runner_client.post(notes_url(execution), {"text": text}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert message in html
    if text.strip():
        assert text in html  # still in the box, to shorten
    assert not TriageNote.objects.exists() and not audits(services.NOTE_ADDED)


def test_a_note_of_exactly_10000_characters_with_line_breaks_is_accepted(runner_client, execution):
    text = ("y" * 99 + "\r\n") * 100  # 10,000 characters once its line breaks are "\n"
    runner_client.post(notes_url(execution), {"text": text.strip()}, **HTMX)
    assert len(TriageNote.objects.get().text) == 10_000 - 1


def test_the_same_note_posted_twice_at_once_is_stored_once(runner_client, execution):
    first = runner_client.post(notes_url(execution), {"text": "Escalated to cloud team"}, **HTMX)
    second = runner_client.post(notes_url(execution), {"text": "Escalated to cloud team"}, **HTMX)

    assert TriageNote.objects.count() == 1 and len(audits(services.NOTE_ADDED)) == 1
    assert "Note added." in first.content.decode()
    assert "Already added." in second.content.decode()
    assert second.content.decode().count('<div class="note-text">') == 1


def test_the_same_text_later_or_from_someone_else_is_a_new_note(
    runner_client, client, other_runner, execution
):
    runner_client.post(notes_url(execution), {"text": "Still failing"}, **HTMX)
    TriageNote.objects.update(created_at=timezone.now() - timedelta(minutes=2))
    from django.core.cache import cache

    cache.clear()  # the double-click guard has expired by then
    runner_client.post(notes_url(execution), {"text": "Still failing"}, **HTMX)
    client.force_login(other_runner)
    client.post(notes_url(execution), {"text": "Still failing"}, **HTMX)
    assert TriageNote.objects.count() == 3


# --- the append-only rule -----------------------------------------------------------------


def _note(runner_client, execution, text="First look: AccessDenied") -> TriageNote:
    runner_client.post(notes_url(execution), {"text": text}, **HTMX)
    return TriageNote.objects.latest("id")


def test_the_author_edits_a_note_within_15_minutes_and_it_is_audited(
    runner_client, runner, execution
):
    note = _note(runner_client, execution)
    TriageNote.objects.filter(pk=note.pk).update(
        created_at=timezone.now() - timedelta(minutes=14, seconds=30)
    )
    response = runner_client.post(
        note_url(execution, note), {"text": "First look: AccessDenied on the role"}, **HTMX
    )

    note.refresh_from_db()
    assert note.text == "First look: AccessDenied on the role"
    assert note.edited_at is not None
    html = response.content.decode()
    assert "Note saved." in html and "data-edited" in html
    [event] = audits(services.NOTE_EDITED)
    assert event.actor == runner
    assert event.detail == {
        "execution": str(execution.pk),
        "note": note.pk,
        "before": "First look: AccessDenied",
        "after": "First look: AccessDenied on the role",
    }


def test_after_15_minutes_a_note_cannot_be_edited_even_by_its_author(runner_client, execution):
    note = _note(runner_client, execution)
    TriageNote.objects.filter(pk=note.pk).update(
        created_at=timezone.now() - timedelta(minutes=15, seconds=5)
    )
    page = runner_client.get(f"/executions/{execution.pk}/").content.decode()
    assert f'action="{note_url(execution, note)}"' not in page  # no Edit any more

    # A form opened before the deadline and posted after it: refused on the server.
    response = runner_client.post(note_url(execution, note), {"text": "rewritten"}, **HTMX)
    html = response.content.decode()
    assert "This note can no longer be edited" in html and "Add a new note instead" in html
    assert "rewritten" in html  # what was typed moves to the new-note box, not lost
    note.refresh_from_db()
    assert note.text == "First look: AccessDenied" and note.edited_at is None
    assert audits(services.NOTE_EDITED) == []
    plain = runner_client.post(note_url(execution, note), {"text": "rewritten"})
    assert plain.status_code == 403 and "no longer be edited" in plain.content.decode()


def test_only_the_author_may_edit_a_note(runner_client, client, other_runner, execution):
    note = _note(runner_client, execution)
    client.force_login(other_runner)
    page = client.get(f"/executions/{execution.pk}/").content.decode()
    assert "First look: AccessDenied" in page
    assert f'action="{note_url(execution, note)}"' not in page

    response = client.post(note_url(execution, note), {"text": "not mine"}, **HTMX)
    assert "Only the author of a note can edit it." in response.content.decode()
    note.refresh_from_db()
    assert note.text == "First look: AccessDenied"


def test_the_author_sees_edit_and_until_when(runner_client, execution):
    note = _note(runner_client, execution)
    page = runner_client.get(f"/executions/{execution.pk}/").content.decode()
    assert f'action="{note_url(execution, note)}"' in page
    assert "Edit</summary>" in page and "you can edit it until" in page


def test_a_note_can_never_be_emptied_or_deleted(runner_client, execution):
    note = _note(runner_client, execution)
    response = runner_client.post(note_url(execution, note), {"text": ""}, **HTMX)
    assert "The note is empty" in response.content.decode()
    assert runner_client.delete(note_url(execution, note)).status_code == 405
    assert TriageNote.objects.get(pk=note.pk).text == "First look: AccessDenied"


def test_an_unchanged_edit_is_not_audited(runner_client, execution):
    note = _note(runner_client, execution)
    runner_client.post(note_url(execution, note), {"text": note.text}, **HTMX)
    assert audits(services.NOTE_EDITED) == []
    assert TriageNote.objects.get(pk=note.pk).edited_at is None


# --- escaping -----------------------------------------------------------------------------


def test_a_hostile_note_and_ticket_are_shown_as_text(runner_client, execution):
    runner_client.post(
        triage_url(execution), {"state": "open", "ticket": "javascript:alert(1)"}, **HTMX
    )
    runner_client.post(
        notes_url(execution), {"text": '<script>alert(1)</script><img src=x onerror="alert(2)">'}
    )
    html = runner_client.get(f"/executions/{execution.pk}/").content.decode()

    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt;"
        in html
    )
    assert 'href="javascript:' not in html
    assert "<span data-ticket>javascript:alert(1)</span>" in html


@pytest.mark.parametrize(
    ("ticket", "link"),
    [
        ("https://jira.example.com/browse/SEC-12", True),
        ("http://tickets.internal.example/12?x=1&y=2", True),
        ("SEC-12", False),
        ("ftp://files.example.com/x", False),
        ("data:text/html,<b>x</b>", False),
        ('https://x.example.com/"><script>alert(1)</script>', False),
    ],
)
def test_a_ticket_is_a_link_only_when_it_is_an_http_url(runner_client, execution, ticket, link):
    response = runner_client.post(
        triage_url(execution), {"state": "open", "ticket": ticket}, **HTMX
    )
    html = response.content.decode()
    assert "<script>alert(1)" not in html and "<b>x</b>" not in html
    anchors = re.findall(r"<a [^>]*data-ticket[^>]*>", html)
    if link:
        [anchor] = anchors
        assert 'rel="noopener noreferrer"' in anchor and 'href="http' in anchor
    else:
        assert anchors == []
        assert "<span data-ticket>" in html


# --- the section on the execution page ----------------------------------------------------


def test_the_section_survives_the_live_refresh_and_posts_to_its_own_views(runner_client, execution):
    html = runner_client.get(f"/executions/{execution.pk}/").content.decode()
    section = re.search(r'<section id="triage"[^>]*>', html).group(0)
    assert 'hx-preserve="true"' in section
    # Its forms swap the body inside the preserved section, and work without JavaScript.
    assert f'action="{triage_url(execution)}" hx-post="{triage_url(execution)}"' in html
    assert 'hx-target="#triage-body"' in html
    assert html.index('id="triage"') < html.index('class="facts"')


def test_an_htmx_post_answers_the_section_body_only(runner_client, execution):
    response = runner_client.post(triage_url(execution), {"state": "open"}, **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="triage-body"')
    assert "<html" not in html and "hx-preserve" not in html


def test_the_triage_page_alone_works_without_javascript(runner_client, execution):
    response = runner_client.get(triage_url(execution))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="triage-body"' in html and f'href="/executions/{execution.pk}/"' in html


def test_the_export_keeps_its_shape_with_state_ticket_and_notes(runner_client, execution):
    runner_client.post(triage_url(execution), {"state": "resolved", "ticket": "SEC-3"}, **HTMX)
    runner_client.post(notes_url(execution), {"text": "Fixed the role."}, **HTMX)
    data = triage_export(execution.pk)
    assert set(data) == {"execution_id", "state", "ticket", "updated_by", "updated_at", "notes"}
    assert data["state"] == "resolved" and data["ticket"] == "SEC-3"
    assert data["updated_by"] == "rita.runner"
    assert [n["text"] for n in data["notes"]] == ["Fixed the role."]


def test_staff_read_every_triage_change_in_the_audit_log(
    runner_client, client, admin_user, execution
):
    runner_client.post(triage_url(execution), {"state": "escalated", "ticket": "SEC-5"}, **HTMX)
    runner_client.post(notes_url(execution), {"text": "Paged the <b>owner</b>"}, **HTMX)
    client.force_login(admin_user)
    html = client.get("/audit/?user=rita").content.decode()
    for action in (services.STATE_CHANGED, services.TICKET_CHANGED, services.NOTE_ADDED):
        assert f'data-action="{action}"' in html
    assert f"execution {execution.pk}" in html
    assert "&quot;after&quot;: &quot;escalated&quot;" in html
    assert "Paged the &lt;b&gt;owner&lt;/b&gt;" in html
