"""`/executions/<id>/evidence.zip`: the evidence bundle, its checksums, signature and masking."""

from __future__ import annotations

import hashlib
import html
import io
import json
import shutil
import subprocess
import tomllib
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from qflowui.core.masking import RULES
from qflowui.executions import evidence_bundle, evidence_svg, services
from qflowui.executions import graph as graphs
from qflowui.mirror import status as st
from qflowui.mirror.models import Execution, Step, StepPayload, Workflow
from qflowui.runs.models import AuditEvent
from qflowui.triage.models import Triage, TriageNote
from tests import secrets_upstream as up
from tests.conftest import require
from tests.test_execution_detail_support import failed, workflow_of

pytestmark = pytest.mark.django_db(transaction=True)

FIXED = {"MANIFEST.json", "MANIFEST.json.sig", "SHA256SUMS"}


@pytest.fixture(autouse=True)
def _fresh_memo():
    services.memo_clear()


def _download(client, execution_id) -> tuple[object, bytes, list[bytes]]:
    response = client.get(f"/executions/{execution_id}/evidence.zip")
    chunks = list(response.streaming_content) if response.streaming else [response.content]
    return response, b"".join(chunks), chunks


def _bundle(client, execution_id) -> zipfile.ZipFile:
    response, data, _ = _download(client, execution_id)
    assert response.status_code == 200
    return zipfile.ZipFile(io.BytesIO(data))


def _extract(archive: zipfile.ZipFile, where: Path) -> Path:
    where.mkdir()
    archive.extractall(where)
    return where


def _sha256sum_check(folder: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("sha256sum")
    require(binary is not None, "the sha256sum binary (coreutils)")
    return subprocess.run(  # noqa: S603 - coreutils' sha256sum on our own temporary folder
        [binary, "--check", "--strict", "SHA256SUMS"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )


def _verify(path: Path) -> tuple[bool, str]:
    out = io.StringIO()
    try:
        call_command("verify_evidence", str(path), stdout=out)
    except CommandError as exc:
        return False, out.getvalue() + str(exc)
    return True, out.getvalue()


# --- a mirrored execution (no QFlow call) ----------------------------------------------------


def _mirrored(
    node_ids: list[str],
    payloads: dict[tuple[str, str], object] | None = None,
    *,
    status: str = "Failed",
    cached: bool = True,
) -> Execution:
    """A finished execution whose steps and payloads are all in the mirror (`cached`: a
    payload not given is stored as QFlow's "no data"), so the bundle asks QFlow nothing."""
    components = [
        {"id": node, "name": f"Step {i}", "type": "action", "next": None}
        for i, node in enumerate(node_ids)
    ]
    workflow = Workflow.objects.create(
        id=uuid.uuid4(),
        name="Rotate keys",
        cloud="AWS",
        revision="r1",
        definition={"components": components},
    )
    started = timezone.now() - timedelta(hours=1)
    execution = Execution.objects.create(
        id=uuid.uuid4(),
        workflow=workflow,
        status=status,
        status_class=st.status_class(status),
        is_terminal=True,
        started_at=started,
        ended_at=started + timedelta(seconds=len(node_ids) + 1),
        duration_ms=(len(node_ids) + 1) * 1000,
        last_synced_at=timezone.now(),
        steps_synced_at=timezone.now(),
    )
    for order, node in enumerate(node_ids, start=1):
        Step.objects.create(
            execution=execution,
            node_id=node,
            node_type="action",
            status="Success",
            status_class=st.SUCCESS,
            event_order=order,
            started_at=started + timedelta(seconds=order),
            ended_at=started + timedelta(seconds=order, milliseconds=800),
            raw={"nodeId": node},
            last_synced_at=timezone.now(),
        )
    payloads = dict(payloads or {})
    if cached:
        for node in node_ids:
            for kind in ("input", "output"):
                payloads.setdefault((node, kind), None)
    for (node, kind), body in payloads.items():
        StepPayload.objects.create(
            execution=execution,
            node_id=node,
            kind=kind,
            body=body,
            size=len(json.dumps(body)),
            fetched_at=timezone.now(),
        )
    return execution


# --- what is in it ---------------------------------------------------------------------------


def test_the_bundle_unzips_and_sha256sum_checks_every_file(simulator, viewer_client, tmp_path):
    ex = failed(simulator)

    response, data, _ = _download(viewer_client, ex.id)

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="evidence-{ex.id}.zip"'
    assert "no-store" in response["Cache-Control"]
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    names = archive.namelist()
    assert names[-3:] == ["MANIFEST.json", "MANIFEST.json.sig", "SHA256SUMS"]
    for expected in ("execution.json", "graph.svg", "timeline.svg", "triage.json"):
        assert expected in names
    folder = _extract(archive, tmp_path / "bundle")
    checked = _sha256sum_check(folder)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    listed = [line.split("  ", 1)[1] for line in (folder / "SHA256SUMS").read_text().splitlines()]
    assert sorted(listed) == sorted(n for n in names if n != "SHA256SUMS")
    assert checked.stdout.count(": OK") == len(names) - 1


def test_each_step_has_its_input_and_output_as_json_files_named_in_execution_json(
    simulator, viewer_client
):
    ex = failed(simulator)

    archive = _bundle(viewer_client, ex.id)

    document = json.loads(archive.read("execution.json"))
    assert document["execution"]["id"] == ex.id
    assert document["execution"]["status"] == "Failed"
    assert [s["nodeId"] for s in document["steps"]] == [s.node_id for s in ex.steps]
    for index, record in enumerate(document["steps"], start=1):
        assert "input" not in record and "output" not in record  # they are files of their own
        for kind in ("input", "output"):
            name = record["files"][kind]
            assert name == f"steps/{index:02d}-{record['nodeId']}/{kind}.json"
            json.loads(archive.read(name))
    outputs = [json.loads(archive.read(s["files"]["output"])) for s in document["steps"]]
    assert any(outputs)
    graph = archive.read("graph.svg").decode()
    assert graph.startswith("<?xml") and "<style>" in graph
    assert all(f'data-node-id="{s.node_id}"' in graph for s in ex.steps)
    timeline = archive.read("timeline.svg").decode()
    assert all(f'data-step="{s.node_id}"' in timeline for s in ex.steps)


def test_the_manifest_lists_every_file_with_its_size_and_sha256_and_says_who_when_and_how(
    simulator, viewer_client
):
    ex = failed(simulator)
    before = datetime.now(UTC).replace(microsecond=0)

    archive = _bundle(viewer_client, ex.id)

    manifest = json.loads(archive.read("MANIFEST.json"))
    files = {f["name"]: f for f in manifest["files"]}
    assert set(files) == set(archive.namelist()) - FIXED
    for name, entry in files.items():
        data = archive.read(name)
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    integrity = manifest["integrity"]
    assert {integrity["checksums_file"], integrity["signature_file"]} == FIXED - {"MANIFEST.json"}
    assert "not a public-key signature" in integrity["signature_scheme"]
    created = datetime.fromisoformat(manifest["created_at"])
    assert manifest["created_at"].endswith("Z") and created.utcoffset() == timedelta(0)
    assert before <= created <= datetime.now(UTC)
    assert manifest["created_by"] == "vera.viewer"
    assert manifest["qflowui_version"] == evidence_bundle.QFLOWUI_VERSION
    assert manifest["execution"]["id"] == ex.id
    assert manifest["execution"]["workflow"]["name"] == workflow_of(simulator, ex).name
    assert manifest["masking"]["rules"] == [rule.name for rule in RULES]
    assert len(manifest["masking"]["rules_sha256"]) == 64
    assert manifest["missing"] == [] and manifest["errors"] == []


def test_the_version_in_the_manifest_is_the_projects():
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == evidence_bundle.QFLOWUI_VERSION


def test_the_triage_state_ticket_and_notes_are_in_triage_json(simulator, viewer_client, viewer):
    ex = failed(simulator)
    Triage.objects.create(execution_id=ex.id, state="investigating", ticket="SEC-4711")
    TriageNote.objects.create(execution_id=ex.id, author=viewer, author_name="vera", text="seen")

    triage = json.loads(_bundle(viewer_client, ex.id).read("triage.json"))

    assert triage["state"] == "investigating"
    assert triage["ticket"] == "SEC-4711"
    assert [(n["author"], n["text"]) for n in triage["notes"]] == [("vera", "seen")]


# --- integrity -------------------------------------------------------------------------------


def _rezip(archive: zipfile.ZipFile, path: Path, changes: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as out:
        for name in archive.namelist():
            out.writestr(name, changes.get(name, archive.read(name)))
    return path


def test_verify_evidence_says_ok_for_an_untouched_bundle(simulator, viewer_client, tmp_path):
    ex = failed(simulator)
    _, data, _ = _download(viewer_client, ex.id)
    path = tmp_path / "evidence.zip"
    path.write_bytes(data)

    ok, said = _verify(path)

    assert ok, said
    assert said.startswith("OK ") and "signature is valid" in said


def test_verify_evidence_names_a_changed_file(simulator, viewer_client, tmp_path):
    ex = failed(simulator)
    archive = _bundle(viewer_client, ex.id)
    name = next(n for n in archive.namelist() if n.endswith("/output.json"))

    ok, said = _verify(_rezip(archive, tmp_path / "t.zip", {name: b'{"all": "fine"}'}))

    assert not ok
    assert f"FAILED {name}: changed" in said
    assert "execution.json" not in said


def test_a_manifest_changed_to_match_a_forged_file_breaks_the_signature(
    simulator, viewer_client, tmp_path
):
    ex = failed(simulator)
    archive = _bundle(viewer_client, ex.id)
    forged = b'{"state": "resolved", "ticket": "", "notes": []}\n'
    digest = hashlib.sha256(forged).hexdigest()
    manifest = json.loads(archive.read("MANIFEST.json"))
    for entry in manifest["files"]:
        if entry["name"] == "triage.json":
            entry.update(size=len(forged), sha256=digest)
    changes = {"triage.json": forged, "MANIFEST.json": json.dumps(manifest).encode()}
    sums = "".join(
        f"{hashlib.sha256(changes.get(n, archive.read(n))).hexdigest()}  {n}\n"
        for n in archive.namelist()
        if n != "SHA256SUMS"
    )
    changes["SHA256SUMS"] = sums.encode()
    path = _rezip(archive, tmp_path / "forged.zip", changes)
    folder = _extract(zipfile.ZipFile(path), tmp_path / "forged")
    assert _sha256sum_check(folder).returncode == 0  # the sums alone are easy to forge...

    ok, said = _verify(path)

    assert not ok  # ...the signature is not, without the deployment's key
    assert "signature does not match" in said


def test_another_deployments_key_does_not_verify_but_a_rotated_out_key_still_does(
    simulator, viewer_client, tmp_path, settings
):
    ex = failed(simulator)
    _, data, _ = _download(viewer_client, ex.id)
    path = tmp_path / "evidence.zip"
    path.write_bytes(data)
    old_key = settings.SECRET_KEY

    settings.SECRET_KEY = "another-deployment-" + "k" * 40
    ok, said = _verify(path)
    assert not ok and "signature does not match" in said

    settings.SECRET_KEY_FALLBACKS = [old_key]
    ok, said = _verify(path)
    assert ok and "SECRET_KEY_FALLBACKS[0]" in said


# --- secrets ---------------------------------------------------------------------------------


def _leaks(text: str) -> list[str]:
    found = []
    for name, secret in up.SECRETS.items():
        forms = {secret, html.escape(secret), json.dumps(secret)[1:-1]}
        if any(form in text for form in forms):
            found.append(name)
    return found


def test_no_secret_from_qflow_or_a_triage_note_appears_in_any_file(
    httpserver, settings, viewer_client, viewer, tmp_path
):
    up.serve(httpserver, settings)
    call_command("qflow_sync", stdout=io.StringIO())
    note = f"rotated; old password={up.S['password=']} and {up.S['github']}"
    TriageNote.objects.create(execution_id=up.EXEC_A, author=viewer, author_name="vera", text=note)

    archive = _bundle(viewer_client, up.EXEC_A)
    folder = _extract(archive, tmp_path / "bundle")

    texts = {p.relative_to(folder).as_posix(): p.read_bytes().decode() for p in folder.rglob("*")
             if p.is_file()}  # fmt: skip
    assert {name: _leaks(text) for name, text in texts.items() if _leaks(text)} == {}
    assert _leaks(" ".join(archive.namelist())) == []
    # What was masked is still there to read, masked.
    assert "postgres://dbadmin:********@db:5432/prod" in texts["steps/01-trigger/input.json"]
    assert "AKIAIOSFODNN7LEAKID" in texts["steps/01-trigger/input.json"]
    assert "password=********" in texts["triage.json"]
    assert up.ORDINARY[0] in texts["execution.json"]
    # QFlow refused one output (a 500 carrying secrets): missing, with the reason, masked;
    # the export's budget then asks QFlow no more, and says so for the payloads after it.
    manifest = json.loads(texts["MANIFEST.json"])
    missing = {m["name"]: m["reason"] for m in manifest["missing"]}
    assert list(missing) == [
        "steps/02-fetch/output.json",
        "steps/03-apply/input.json",
        "steps/03-apply/output.json",
    ]
    assert missing["steps/02-fetch/output.json"].startswith("not fetched (")
    assert missing["steps/03-apply/input.json"] == "not fetched (QFlow did not answer)"
    assert not set(missing) & set(archive.namelist())
    assert _sha256sum_check(folder).returncode == 0


# --- access and audit ------------------------------------------------------------------------


def test_only_a_signed_in_user_with_view_access_gets_the_bundle(
    simulator, client, django_user_model, viewer
):
    ex = failed(simulator)
    url = f"/executions/{ex.id}/evidence.zip"
    outsider = django_user_model.objects.create_user(username="olga.outsider", password="x" * 20)

    anonymous = client.get(url)
    client.force_login(outsider)
    refused = client.get(url)
    client.force_login(viewer)
    allowed = client.get(url)

    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/")
    assert refused.status_code == 403 and not refused.streaming
    assert AuditEvent.objects.filter(action="access.denied", actor=outsider).exists()
    assert allowed.status_code == 200
    assert zipfile.ZipFile(io.BytesIO(b"".join(allowed.streaming_content))).testzip() is None
    exported = AuditEvent.objects.filter(action=evidence_bundle.EVIDENCE_EXPORTED)
    assert [e.actor for e in exported] == [viewer]


def test_a_runner_may_download_it_too(simulator, client, django_user_model):
    from tests.test_runs_support import runners_group

    ex = failed(simulator)
    runner = django_user_model.objects.create_user(username="rita.runner", password="x" * 20)
    runner.groups.add(runners_group())
    client.force_login(runner)

    assert _bundle(client, ex.id).testzip() is None


def test_an_unknown_execution_is_a_404_page(simulator, viewer_client):
    response = viewer_client.get(f"/executions/{uuid.uuid4()}/evidence.zip")

    assert response.status_code == 404
    assert "Execution not found" in response.content.decode()


def test_the_export_is_in_the_audit_log_with_the_execution_files_and_bytes(
    simulator, viewer_client, viewer
):
    ex = failed(simulator)

    _, data, _ = _download(viewer_client, ex.id)

    (event,) = AuditEvent.objects.filter(action=evidence_bundle.EVIDENCE_EXPORTED)
    assert event.actor == viewer and event.actor_name == "vera.viewer"
    assert event.target == f"execution {ex.id}"
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert event.detail["execution"] == ex.id
    assert event.detail["files"] == len(archive.namelist())
    assert event.detail["bytes"] == len(data)
    assert event.detail["content_bytes"] == sum(i.file_size for i in archive.infolist())
    assert event.detail["complete"] is True


def test_a_download_abandoned_half_way_is_audited_as_incomplete(viewer_client):
    big = {"items": [{"n": i, "text": f"row {i} " * 20} for i in range(20_000)]}
    execution = _mirrored(["a"], {("a", "output"): big})

    response = viewer_client.get(f"/executions/{execution.pk}/evidence.zip")
    next(iter(response.streaming_content))
    response.close()

    (event,) = AuditEvent.objects.filter(action=evidence_bundle.EVIDENCE_EXPORTED)
    assert event.detail["complete"] is False


def test_the_execution_page_offers_the_bundle(simulator, viewer_client):
    ex = failed(simulator)

    page = viewer_client.get(f"/executions/{ex.id}/").content.decode()

    assert f'href="/executions/{ex.id}/evidence.zip"' in page
    assert "Evidence bundle" in page


# --- hostile names, missing pieces, failures ---------------------------------------------------


def test_hostile_node_ids_become_safe_unique_names_inside_the_archive(viewer_client, tmp_path):
    hostile = [  # PostgreSQL keeps no NUL in text: every other control character is tried
        "../../../../tmp/evil",
        "/etc/passwd",
        "..",
        "a/b",
        "a_b",
        "x\x1b[31m\r\n\t",
        "C:\\w",
    ]
    payloads = {(node, kind): {"node": node} for node in hostile for kind in ("input", "output")}
    execution = _mirrored(hostile, payloads)

    archive = _bundle(viewer_client, execution.pk)

    names = archive.namelist()
    assert len(names) == len(set(names))
    steps = [n for n in names if n.startswith("steps/")]
    assert len(steps) == 2 * len(hostile)
    for name in names:
        assert evidence_bundle.safe_member_name(name), name
        parts = name.split("/")
        assert ".." not in parts and "" not in parts and all(p.isprintable() for p in parts)
    folder = _extract(archive, tmp_path / "bundle")
    assert {p.name for p in tmp_path.iterdir()} == {"bundle"}
    assert all(p.resolve().is_relative_to(folder.resolve()) for p in folder.rglob("*"))
    document = json.loads(archive.read("execution.json"))
    for record in document["steps"]:
        assert json.loads(archive.read(record["files"]["input"])) == {"node": record["nodeId"]}
    assert _sha256sum_check(folder).returncode == 0


def test_without_graphviz_the_manifest_says_why_there_is_no_graph(
    viewer_client, monkeypatch, tmp_path
):
    monkeypatch.setattr(graphs, "dot_path", lambda: None)
    execution = _mirrored(["a", "b"], {("a", "input"): {"x": 1}})

    archive = _bundle(viewer_client, execution.pk)

    assert "graph.svg" not in archive.namelist()
    manifest = json.loads(archive.read("MANIFEST.json"))
    assert "Graphviz" in manifest["notes"]["graph.svg"]
    assert "timeline.svg" in archive.namelist()
    assert _sha256sum_check(_extract(archive, tmp_path / "b")).returncode == 0


def test_payloads_not_cached_of_a_running_execution_are_listed_as_missing(viewer_client):
    execution = _mirrored(["a"], {("a", "input"): {"x": 1}}, status="Running", cached=False)
    Execution.objects.filter(pk=execution.pk).update(
        is_terminal=False, status_class=st.RUNNING, ended_at=None
    )
    # A running execution is refreshed from QFlow; with none configured the mirror's copy is
    # used, with a notice.

    archive = _bundle(viewer_client, execution.pk)

    manifest = json.loads(archive.read("MANIFEST.json"))
    assert [(m["name"], m["reason"]) for m in manifest["missing"]] == [
        ("steps/01-a/output.json", "not fetched yet")
    ]
    assert "steps/01-a/input.json" in archive.namelist()


def test_a_drawing_that_fails_is_left_out_and_said_in_errors_txt(
    viewer_client, monkeypatch, tmp_path
):
    def broken(detail):
        raise RuntimeError("no timeline today, token=SecretTok3nValue")

    monkeypatch.setattr(evidence_svg, "timeline_svg", broken)
    execution = _mirrored(["a"], {("a", "input"): {"x": 1}})

    archive = _bundle(viewer_client, execution.pk)

    assert "timeline.svg" not in archive.namelist()
    errors = archive.read("ERRORS.txt").decode()
    assert "timeline.svg: left out" in errors and "no timeline today" in errors
    assert "SecretTok3nValue" not in errors
    manifest = json.loads(archive.read("MANIFEST.json"))
    assert manifest["errors"] == errors.splitlines()
    assert "ERRORS.txt" in {f["name"] for f in manifest["files"]}
    assert _sha256sum_check(_extract(archive, tmp_path / "b")).returncode == 0


def test_a_payload_that_fails_half_way_ends_there_and_the_zip_stays_valid(
    viewer_client, monkeypatch, tmp_path
):
    real = evidence_bundle.jsonio.iter_dumps

    def breaks_after_one_piece(value, **kw):
        pieces = real(value, **kw)
        yield next(pieces)
        raise ValueError("the database went away")

    monkeypatch.setattr(evidence_bundle.jsonio, "iter_dumps", breaks_after_one_piece)
    big = {"items": [{"n": i, "text": "x" * 100} for i in range(20_000)]}
    execution = _mirrored(["a"], {("a", "output"): big})

    archive = _bundle(viewer_client, execution.pk)

    assert archive.testzip() is None
    manifest = json.loads(archive.read("MANIFEST.json"))
    (entry,) = [f for f in manifest["files"] if f["name"] == "steps/01-a/output.json"]
    assert entry["complete"] is False
    assert "steps/01-a/output.json: incomplete" in archive.read("ERRORS.txt").decode()
    assert _sha256sum_check(_extract(archive, tmp_path / "b")).returncode == 0
    ok, said = _verify(_rezip(archive, tmp_path / "b.zip", {}))
    assert ok, said  # incomplete is said, not hidden: the sums and signature still hold


def test_a_10_mb_payload_is_streamed_in_pieces(viewer_client):
    rows = [{"InstanceId": f"i-{i:017x}", "State": "running", "Tags": [{"Key": "team",
             "Value": f"secops-{i}"}], "Note": "n" * 40} for i in range(70_000)]  # fmt: skip
    body = {"Reservations": rows}
    size = len(json.dumps(body))
    assert size > 10_000_000
    execution = _mirrored(["inventory"], {("inventory", "output"): body})

    response, data, chunks = _download(viewer_client, execution.pk)

    assert response.status_code == 200 and response.streaming
    assert len(chunks) > 10
    assert max(len(c) for c in chunks) < 2_000_000  # never the whole zip (or file) at once
    archive = zipfile.ZipFile(io.BytesIO(data))
    member = archive.getinfo("steps/01-inventory/output.json")
    assert member.file_size > 10_000_000
    assert json.loads(archive.read(member)) == body
