"""The evidence bundle of one execution: a zip written as it is streamed, and its check.

What is in it (every file masked with the rules of qflowui/core/masking.py, applied again
when the bundle is written, so data cached under older rules is masked by today's):

    execution.json            the execution and its steps: qflowui's JSON export without the
                              payloads, each step naming its payload files instead
    steps/NN-<node>/input.json, output.json   each step's payloads
    graph.svg, timeline.svg   the drawings of the execution page
    triage.json               triage state, ticket and notes
    ERRORS.txt                only when something could not be written, and why
    MANIFEST.json             every file with its size and SHA-256, when, who, which version,
                              which masking rules, what is missing and why
    MANIFEST.json.sig         HMAC-SHA256 of MANIFEST.json (see `manifest_signature`)
    SHA256SUMS                `sha256sum -c SHA256SUMS` checks every other file

Streaming: the zip goes out through a sink that zipfile sees as a non-seekable file (sizes
and CRCs then follow each member in a data descriptor), and each member is hashed while it is
written. A payload's text is written in pieces (jsonio.iter_dumps) and never held whole; only
names, sizes and digests are kept for the manifest, which comes last. A file that fails
half-way ends there, marked incomplete; one that fails before its first byte is left out; both
are in ERRORS.txt and the manifest, and the archive stays a valid zip.

The signature proves that the manifest (and through its digests, every file) was written by
a qflowui holding this deployment's SECRET_KEY; anyone holding that key can check it (and
could forge it). It is not a public-key signature.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import IO, Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from qflowui.accounts import audit
from qflowui.core import jsonio
from qflowui.core.masking import MASK, RULES, mask_free_text, mask_payload
from qflowui.executions import evidence_svg, export
from qflowui.executions.payloads import KINDS
from qflowui.executions.services import Detail
from qflowui.triage.notes import triage_export

logger = logging.getLogger(__name__)

# The version in pyproject.toml (which the image does not ship); a test keeps them equal.
QFLOWUI_VERSION = "0.1.0"
FORMAT = "qflowui-evidence/1"
EVIDENCE_EXPORTED = audit.EVIDENCE_EXPORTED
SIGNING_SALT = "qflowui.evidence"

EXECUTION = "execution.json"
GRAPH = "graph.svg"
TIMELINE = "timeline.svg"
TRIAGE = "triage.json"
ERRORS = "ERRORS.txt"
MANIFEST = "MANIFEST.json"
SIGNATURE = "MANIFEST.json.sig"
SUMS = "SHA256SUMS"

FLUSH_BYTES = 64 * 1024  # zip bytes handed to the server at a time
NODE_NAME_MAX = 60


# --- names -------------------------------------------------------------------------------------


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def step_folders(node_ids: Iterable[str]) -> dict[str, str]:
    """Each step's folder under steps/: its position and its node id made safe (letters,
    digits, `_` and `-` only: no `/`, no `.`, no control character), so a hostile node id
    never names a path outside the archive's folder; the position keeps them unique."""
    ids = list(node_ids)
    width = max(2, len(str(len(ids))))
    out = {}
    for index, node_id in enumerate(ids, start=1):
        safe = _UNSAFE.sub("_", node_id).strip("_")[:NODE_NAME_MAX] or "step"
        out[node_id] = f"{index:0{width}d}-{safe}"
    return out


def safe_member_name(name: str) -> bool:
    """A name that extracts inside the folder it is extracted to (no zip-slip)."""
    path = PurePosixPath(name)
    return (
        bool(name)
        and not path.is_absolute()
        and "\\" not in name
        and ".." not in path.parts
        and not any(ord(ch) < 32 for ch in name)
        and ":" not in path.parts[0]
    )


# --- the zip, streamed ---------------------------------------------------------------------


class _Sink:
    """A write-only, non-seekable file: zipfile writes into it, the stream takes it out."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self._pieces.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._pieces)
        self._pieces.clear()
        self.size = 0
        return data


@dataclass
class BundleFile:
    name: str
    size: int
    sha256: str
    what: str
    complete: bool = True


@dataclass
class ZipStream:
    """A zip written member by member; every method yields the zip bytes it produced."""

    created_at: datetime
    files: list[BundleFile] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    bytes_out: int = 0

    def __post_init__(self) -> None:
        self._sink = _Sink()
        self._zip = zipfile.ZipFile(self._sink, "w", compression=zipfile.ZIP_DEFLATED)  # type: ignore[arg-type]
        self._date_time = self.created_at.astimezone(UTC).timetuple()[:6]

    def _take(self) -> bytes:
        data = self._sink.take()
        self.bytes_out += len(data)
        return data

    def add(self, name: str, pieces: Iterable[bytes], what: str) -> Iterator[bytes]:
        """One member from its pieces, hashed as written."""
        if not safe_member_name(name) or any(f.name == name for f in self.files):
            raise ValueError(f"refusing the member name {name!r}")
        source = iter(pieces)
        try:
            piece: bytes | None = next(source, b"")
        except Exception as exc:  # noqa: BLE001 - said in ERRORS.txt; the bundle goes on
            self.error(name, exc, "left out")
            return
        info = zipfile.ZipInfo(name, date_time=self._date_time)  # type: ignore[arg-type]
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        digest = hashlib.sha256()
        entry = BundleFile(name, 0, "", what)
        with self._zip.open(info, "w") as out:
            try:
                while piece is not None:
                    out.write(piece)
                    digest.update(piece)
                    entry.size += len(piece)
                    if self._sink.size >= FLUSH_BYTES:
                        yield self._take()
                    piece = next(source, None)
            except Exception as exc:  # noqa: BLE001 - the member ends here, marked so
                entry.complete = False
                self.error(name, exc, f"incomplete: ends after {entry.size} bytes")
        entry.sha256 = digest.hexdigest()
        self.files.append(entry)
        yield self._take()

    def add_made(self, name: str, make: Callable[[], bytes], what: str) -> Iterator[bytes]:
        """A small member made whole first: one that cannot be made is left out."""
        try:
            data = make()
        except Exception as exc:  # noqa: BLE001 - said in ERRORS.txt; the bundle goes on
            self.error(name, exc, "left out")
            return
        yield from self.add(name, [data], what)

    def error(self, name: str, exc: BaseException | str, outcome: str) -> None:
        if isinstance(exc, BaseException):
            logger.warning("evidence bundle: %s %s", name, outcome, exc_info=exc)
            exc = f"{type(exc).__name__}: {exc}"
        self.errors.append(mask_free_text(f"{name}: {outcome} ({exc})"))

    def close(self) -> Iterator[bytes]:
        self._zip.close()
        yield self._take()


# --- what goes in ------------------------------------------------------------------------------


@dataclass
class _Contents:
    missing: list[dict[str, str]] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)


def evidence_stream(detail: Detail, *, request: HttpRequest) -> Iterator[bytes]:
    """The bundle's zip bytes, as they are written. The export is in the audit log when the
    stream ends (finished, or abandoned by the browser: then `complete` is false)."""
    created_at = timezone.now()
    user = request.user
    username = user.get_username() if user.is_authenticated else audit.ANONYMOUS
    stream = ZipStream(created_at)
    contents = _Contents()
    complete = False
    try:
        try:
            yield from _contents(stream, detail, contents)
        except Exception as exc:  # noqa: BLE001 - a bug must not cut the zip: it ends valid
            stream.error("bundle", exc, "stopped early")
        if stream.errors:
            text = "\n".join(stream.errors) + "\n"
            yield from stream.add(ERRORS, [text.encode()], "what could not be written, and why")
        manifest = _manifest(detail, stream, contents, created_at, username)
        yield from stream.add(MANIFEST, [manifest], "this list")
        yield from stream.add(SIGNATURE, [signature_file(manifest)], "HMAC of MANIFEST.json")
        sums = "".join(f"{f.sha256}  {f.name}\n" for f in stream.files)
        yield from stream.add(SUMS, [sums.encode()], "")
        yield from stream.close()
        complete = True
    finally:
        audit.audit_record(
            action=EVIDENCE_EXPORTED,
            request=request,
            target=f"execution {detail.execution.pk}",
            detail={
                "execution": str(detail.execution.pk),
                "workflow": detail.workflow.name,
                "files": len(stream.files),
                "bytes": stream.bytes_out,
                "content_bytes": sum(f.size for f in stream.files),
                "missing": len(contents.missing),
                "errors": len(stream.errors),
                "complete": complete,
            },
        )


def _contents(stream: ZipStream, detail: Detail, contents: _Contents) -> Iterator[bytes]:
    execution = detail.execution
    folders = step_folders(s.node_id for s in detail.steps)
    payloads: list[tuple[str, export.PayloadSlot]] = []
    try:
        # The export fetches the payloads not cached yet, within its budgets; no body is held.
        slots = export.payload_slots(detail)
        document: dict[str, Any] | None = export.export_document(detail, slots)
    except Exception as exc:  # noqa: BLE001 - the rest of the bundle is still evidence
        stream.error(EXECUTION, exc, "left out, and the payloads with it")
        document = None
    if document is not None:
        by_step = {(slot.node_id, slot.kind): slot for slot in slots}
        for step, record in zip(detail.steps, document["steps"], strict=True):
            files: dict[str, str | None] = {}
            for kind in KINDS:
                slot = by_step[(step.node_id, kind)]
                name = f"steps/{folders[step.node_id]}/{kind}.json"
                if slot.stored:
                    payloads.append((name, slot))
                    files[kind] = name
                else:
                    files[kind] = None
                    contents.missing.append(
                        {
                            "name": name,
                            "node_id": mask_free_text(step.node_id),
                            "kind": kind,
                            "reason": mask_free_text(slot.note or "not in qflowui's cache"),
                        }
                    )
            record["files"] = files
        text = _json_made(document)
        del document
        what = "the execution and its steps (qflowui's JSON export, payloads in steps/)"
        yield from stream.add_made(EXECUTION, text, what)
    outputs = {slot.node_id: name for name, slot in payloads if slot.kind == "output"}
    for name, slot in payloads:
        # One payload at a time: its body is read from the database as it is written.
        what = f"the {slot.kind} of step {slot.node_id}"
        yield from stream.add(name, _payload_pieces(detail, slot), mask_free_text(what))
    graph = lambda: evidence_svg.graph_svg(detail, outputs.get)  # noqa: E731
    yield from _drawing(stream, GRAPH, graph, contents)
    yield from _drawing(stream, TIMELINE, lambda: evidence_svg.timeline_svg(detail), contents)
    yield from stream.add_made(
        TRIAGE, lambda: _json_made(triage_export(execution.pk))(), "triage state, ticket and notes"
    )


def _json_made(value: Any) -> Callable[[], bytes]:
    """A maker of `value`'s masked, indented JSON text."""
    return lambda: jsonio.dumps(mask_payload(value), indent=True) + b"\n"


def _payload_pieces(detail: Detail, slot: export.PayloadSlot) -> Iterator[bytes]:
    masked = mask_payload(export.payload_body(detail, slot))
    # Big payloads are written compact, as their download is (decoded, ~4 x the JSON).
    big = jsonio.sizeof(masked) > 4 * export.STREAM_BYTES
    yield from jsonio.iter_dumps(masked, indent=not big)


def _drawing(
    stream: ZipStream,
    name: str,
    draw: Callable[[], tuple[bytes | None, str]],
    contents: _Contents,
) -> Iterator[bytes]:
    try:
        svg, reason = draw()
    except Exception as exc:  # noqa: BLE001 - said in ERRORS.txt and the manifest
        stream.error(name, exc, "left out")
        contents.notes[name] = "not drawn: an error (see ERRORS.txt)"
        return
    if svg is None:
        contents.notes[name] = mask_free_text(f"not included: {reason}")
        return
    yield from stream.add(name, [svg], f"the {name.removesuffix('.svg')} of the execution page")


# --- manifest and signature ----------------------------------------------------------------


def masking_rules() -> dict[str, Any]:
    """What the manifest says of the masking: each rule's name, and a digest of the whole
    table (names, places and patterns), so two bundles say whether the same rules masked
    them."""
    table = [[rule.name, rule.where, list(rule.matches)] for rule in RULES]
    digest = hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()
    return {
        "module": "qflowui.core.masking",
        "replacement": MASK,
        "rules": [rule.name for rule in RULES],
        "rules_sha256": digest,
        "applied_to": "every file, when the bundle was written",
    }


def _manifest(
    detail: Detail,
    stream: ZipStream,
    contents: _Contents,
    created_at: datetime,
    username: str,
) -> bytes:
    execution, workflow = detail.execution, detail.workflow
    document = {
        "format": FORMAT,
        "created_at": created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "created_by": username,
        "qflowui_version": QFLOWUI_VERSION,
        "execution": {
            "id": str(execution.pk),
            "status": mask_free_text(execution.status),
            "terminal": execution.is_terminal,
            "workflow": {
                "id": str(workflow.pk),
                "name": mask_free_text(workflow.name),
                "revision": mask_free_text(workflow.revision),
            },
        },
        "masking": masking_rules(),
        "files": [
            {"name": f.name, "size": f.size, "sha256": f.sha256, "what": f.what}
            | ({} if f.complete else {"complete": False})
            for f in stream.files
        ],
        "missing": contents.missing,
        "notes": contents.notes,
        "errors": stream.errors,
        "integrity": {
            "checksums_file": SUMS,
            "checksums_cover": "every file but itself, this manifest included",
            "signature_file": SIGNATURE,
            "signature_scheme": (
                f"HMAC-SHA256 of {MANIFEST} with a key derived from the qflowui deployment's "
                f'SECRET_KEY (Django salted_hmac, salt "{SIGNING_SALT}"): it proves the bundle '
                "came from that deployment, to anyone holding its key; not a public-key "
                "signature. Check with: python manage.py verify_evidence <bundle.zip>"
            ),
        },
    }
    return jsonio.dumps(document, indent=True) + b"\n"


def manifest_signature(manifest: bytes, secret: str | bytes | None = None) -> str:
    """HMAC-SHA256 of the manifest, keyed from SECRET_KEY (or `secret`) and SIGNING_SALT."""
    return salted_hmac(SIGNING_SALT, manifest, secret=secret, algorithm="sha256").hexdigest()


def signature_file(manifest: bytes) -> bytes:
    return (
        f"algorithm: HMAC-SHA256\n"
        f'key: salted_hmac("{SIGNING_SALT}", SECRET_KEY) of the qflowui that made this bundle\n'
        f"file: {MANIFEST}\n"
        f"hmac: {manifest_signature(manifest)}\n"
    ).encode()


# --- the check ---------------------------------------------------------------------------------

_SUM_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")
_HMAC_LINE = re.compile(r"^hmac: ([0-9a-f]{64})$", re.MULTILINE)


@dataclass
class Verification:
    files: int = 0
    problems: list[str] = field(default_factory=list)
    signature_key: str = ""  # "SECRET_KEY" or "SECRET_KEY_FALLBACKS[i]" when it matched

    @property
    def ok(self) -> bool:
        return not self.problems


def bundle_verify(source: str | IO[bytes]) -> Verification:
    """Check a bundle: every member against SHA256SUMS, every file against the manifest's
    sizes and digests, and the manifest's signature against this deployment's keys."""
    result = Verification()
    try:
        archive = zipfile.ZipFile(source)
    except (OSError, zipfile.BadZipFile) as exc:
        result.problems.append(f"not a readable zip: {exc}")
        return result
    with archive:
        names = archive.namelist()
        for name in names:
            if not safe_member_name(name):
                result.problems.append(f"unsafe file name in the archive: {name!r}")
        for required in (MANIFEST, SIGNATURE, SUMS):
            if required not in names:
                result.problems.append(f"{required} is missing")
        if result.problems:
            return result
        digests = {}
        for name in names:
            if name.endswith("/"):
                continue
            digest, size = _digest(archive, name)
            digests[name] = (digest, size)
        listed = _check_sums(archive.read(SUMS), digests, result)
        for name in digests:
            if name != SUMS and name not in listed:
                result.problems.append(f"{name}: in the archive but not in {SUMS}")
        manifest = archive.read(MANIFEST)
        _check_manifest(manifest, digests, result)
        _check_signature(manifest, archive.read(SIGNATURE), result)
        result.files = len(digests)
    return result


def _digest(archive: zipfile.ZipFile, name: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with archive.open(name) as member:
        while chunk := member.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _check_sums(text: bytes, digests: dict[str, tuple[str, int]], result: Verification) -> set[str]:
    listed = set()
    for number, line in enumerate(text.decode("utf-8", "replace").splitlines(), start=1):
        match = _SUM_LINE.fullmatch(line)
        if not match:
            result.problems.append(f"{SUMS} line {number} is not `<sha256>  <name>`")
            continue
        expected, name = match.groups()
        listed.add(name)
        if name not in digests:
            result.problems.append(f"{name}: listed in {SUMS} but missing from the archive")
        elif digests[name][0] != expected:
            result.problems.append(f"{name}: changed (its SHA-256 differs from {SUMS})")
    return listed


def _check_manifest(
    manifest: bytes, digests: dict[str, tuple[str, int]], result: Verification
) -> None:
    try:
        files = json.loads(manifest)["files"]
        entries = {f["name"]: (f["sha256"], f["size"]) for f in files}
    except (ValueError, KeyError, TypeError) as exc:
        result.problems.append(f"{MANIFEST} cannot be read: {exc}")
        return
    for name, (expected, size) in entries.items():
        if name not in digests:
            result.problems.append(f"{name}: in {MANIFEST} but missing from the archive")
        elif digests[name] != (expected, size):
            result.problems.append(f"{name}: changed (size or SHA-256 differs from {MANIFEST})")
    for name in digests:
        if name not in entries and name not in (MANIFEST, SIGNATURE, SUMS):
            result.problems.append(f"{name}: in the archive but not in {MANIFEST}")


def _check_signature(manifest: bytes, signature: bytes, result: Verification) -> None:
    match = _HMAC_LINE.search(signature.decode("utf-8", "replace"))
    if not match:
        result.problems.append(f"{SIGNATURE} holds no `hmac:` line")
        return
    keys = [("SECRET_KEY", settings.SECRET_KEY)] + [
        (f"SECRET_KEY_FALLBACKS[{i}]", key)
        for i, key in enumerate(getattr(settings, "SECRET_KEY_FALLBACKS", []))
    ]
    for label, key in keys:
        if constant_time_compare(manifest_signature(manifest, key), match.group(1)):
            result.signature_key = label
            return
    result.problems.append(
        f"{SIGNATURE}: the signature does not match {MANIFEST} with this deployment's key "
        "(the manifest was changed, or another deployment made the bundle)"
    )
