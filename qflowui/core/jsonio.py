"""JSON in and out for data that came from QFlow: fast (orjson), and bounded in depth.

QFlow is an untrusted upstream, and JSON nested 10,000 levels deep is valid JSON. Python's
own `json` recurses once per level and raises RecursionError near 1,000 (or crashes the
thread's stack, depending on where it is called from); orjson refuses more than 1,024
levels when reading and more than 254 when writing. qflowui sets one bound for everything
it keeps: **MAX_DEPTH = 512 levels** of objects and arrays. Below it everything works end to
end (store, tree, search, download, export); above it:

- `loads()` refuses the document with `JsonTooDeep` (step payloads: the panel says why);
- `loads_pruned()` keeps the document and replaces every value deeper than the bound with
  the string `PRUNED` (execution and step records, so one hostile record never stops the
  sync or hides an execution);
- `dumps()` refuses with `JsonTooDeep` (values deeper than the bound never get in).

Nothing here recurses on the data's depth: orjson checks depth in C while parsing, the
depth checks walk with an explicit stack, and the stdlib fallback of `dumps` (for values
orjson cannot write, e.g. 255-512 levels, integers beyond 64 bits, lone surrogates) runs
only after such a check has bounded the depth well below Python's recursion limit.

Memory: `sizeof()` weighs a decoded value (the payload memo's unit), and after a request or
a Celery task that handled a megabyte or more of JSON, the freed heap is handed back to the
system (`release_after_heavy`, connected to request_finished and task_postrun below).

Reading differs from the stdlib in what is refused, which is what PostgreSQL's jsonb
refuses too: NaN and Infinity, lone surrogate escapes (`"\\ud800"`), invalid UTF-8.
Integers beyond 64 bits are read as floats (as a browser's JSON.parse would).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import itertools
import json
import logging
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any

import orjson

logger = logging.getLogger(__name__)

MAX_DEPTH = 512
PRUNED = f"[qflowui: nested deeper than {MAX_DEPTH} levels, not kept]"
STREAM_CHUNK = 256 * 1024  # bytes per piece of a streamed document


class JsonTooDeep(ValueError):
    """The JSON is nested deeper than MAX_DEPTH levels of objects and arrays."""

    def __init__(self, max_depth: int = MAX_DEPTH) -> None:
        super().__init__(f"JSON nested deeper than {max_depth} levels")
        self.max_depth = max_depth


# --- reading ---------------------------------------------------------------------------------


def _orjson_depth_limit() -> int:
    """The deepest document orjson reads (1,024 in orjson 3.x), found once by bisection."""
    low, high = 1, 1 << 16
    while low < high:
        mid = (low + high + 1) // 2
        try:
            orjson.loads("[" * mid + "]" * mid)
        except orjson.JSONDecodeError:
            high = mid - 1
        else:
            low = mid
    return low


_READ_LIMIT = _orjson_depth_limit()


def _too_deep_error(exc: orjson.JSONDecodeError) -> bool:
    text = str(exc).lower()
    return "depth" in text or "recursion" in text


def loads(data: bytes | bytearray | memoryview | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The value of a JSON document; JsonTooDeep above `max_depth` levels, ValueError if the
    text is not JSON.

    One parse, depth checked by orjson itself: the document is read inside `wrap` extra
    arrays, so that orjson's own limit (`_READ_LIMIT`) falls exactly `max_depth` levels
    below the document's top. Each wrapper must hold exactly one value, so text that is not
    one JSON value (`1, 2` or `1], [2`) is still refused.
    """
    note_heavy(len(data))
    if len(data) >= HEAVY_BYTES:
        with gc_paused():
            return _loads(data, max_depth)
    return _loads(data, max_depth)


def _loads(data: bytes | bytearray | memoryview | str, max_depth: int) -> Any:
    wrap = _READ_LIMIT - max_depth
    if wrap < 0:
        raise ValueError(f"max_depth above orjson's limit of {_READ_LIMIT}")
    if isinstance(data, memoryview | bytearray):
        data = bytes(data)
    if not wrap:
        return _plain_loads(data, max_depth)
    if isinstance(data, str):
        wrapped: str | bytes = "[" * wrap + data + "]" * wrap
    else:
        wrapped = b"[" * wrap + data + b"]" * wrap
    try:
        value = orjson.loads(wrapped)
    except orjson.JSONDecodeError as exc:
        if _too_deep_error(exc):
            raise JsonTooDeep(max_depth) from None
        # Said again without the wrapper, so that positions in the message are right.
        return _plain_loads(data, max_depth)
    del wrapped
    for _ in range(wrap):
        if type(value) is not list or len(value) != 1:
            raise ValueError("not one JSON value")
        value = value[0]
    return value


# The cyclic garbage collector runs every 700 new containers and, more and more often, over
# all the older ones: during the decoding of a 10 MB payload (a million dicts and lists) it
# takes about half the time. JSON values hold no reference cycles, so big documents are read
# with it paused (process-wide, counted across threads: the last reader resumes it).
_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if not _gc_pauses:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if not _gc_pauses and _gc_was_enabled:
                gc.enable()


def _plain_loads(data: bytes | str, max_depth: int) -> Any:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if _too_deep_error(exc):
            raise JsonTooDeep(max_depth) from None
        raise ValueError(str(exc)) from None
    if too_deep(value, max_depth):
        raise JsonTooDeep(max_depth)
    return value


# A JSON string token or one bracket: what decides nesting (brackets inside strings do not).
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def loads_pruned(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Like `loads`, but a document nested too deep is kept, each value deeper than
    `max_depth` replaced by the string PRUNED. ValueError if the text is not JSON."""
    try:
        return loads(data, max_depth=max_depth)
    except JsonTooDeep:
        pass
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    value = loads(_prune(raw, max_depth), max_depth=max_depth)
    logger.warning("JSON nested deeper than %d levels: the deeper values were left out", max_depth)
    return value


def _prune(data: bytes, max_depth: int) -> bytes:
    """The text with each value at depth `max_depth` + 1 cut out and PRUNED put instead.

    A linear scan of string tokens and brackets; used only for documents already found too
    deep, so its cost (~0.35 s per 10 MB) is paid by hostile input alone.
    """
    marker = orjson.dumps(PRUNED)
    out: list[bytes] = []
    depth = 0
    cut_from = -1
    kept_to = 0
    for match in _TOKEN.finditer(data):
        char = data[match.start()]
        if char == 0x22:  # a string: skipped whole
            continue
        if char in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth == max_depth + 1:
                cut_from = match.start()
        else:
            if depth == max_depth + 1 and cut_from >= 0:
                out.append(data[kept_to:cut_from])
                out.append(marker)
                kept_to = match.end()
                cut_from = -1
            depth -= 1
    out.append(data[kept_to:])
    return b"".join(out)


def too_deep(value: Any, max_depth: int = MAX_DEPTH) -> bool:
    """Whether `value` nests objects and arrays deeper than `max_depth` (explicit stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        current, depth = pop()
        kind = type(current)
        if kind is not dict and kind is not list:
            if isinstance(current, dict | list | tuple):  # subclasses, tuples
                current = dict(current) if isinstance(current, dict) else list(current)
            else:
                continue
        if depth > max_depth:
            return True
        for item in current.values() if isinstance(current, dict) else current:
            if isinstance(item, dict | list | tuple):
                push((item, depth + 1))
    return False


# --- writing ---------------------------------------------------------------------------------


def dumps(value: Any, *, indent: bool = False) -> bytes:
    """The JSON text of `value` as UTF-8 bytes, compact or indented by two spaces.

    orjson when it can; the stdlib (lone surrogates escaped) for what orjson refuses: more
    than 254 levels, integers beyond 64 bits, lone surrogates, keys that are not strings.
    JsonTooDeep above MAX_DEPTH levels.
    """
    try:
        text = orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else 0)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        if too_deep(value, MAX_DEPTH):
            raise JsonTooDeep(MAX_DEPTH) from None
        text = _stdlib_dumps(value, indent)
    note_heavy(len(text))
    return text


def _stdlib_dumps(value: Any, indent: bool) -> bytes:
    separators = (",", ": ") if indent else (",", ":")
    text = json.dumps(
        value,
        ensure_ascii=False,
        indent=2 if indent else None,
        separators=separators,
        allow_nan=False,
        default=str,
    )
    # UTF-8 like orjson's; a lone surrogate (only ever inside a JSON string) becomes its
    # \uXXXX escape, so the text stays valid JSON.
    return text.encode("utf-8", "backslashreplace")


def dumps_text(value: Any, *, indent: bool = False) -> str:
    return dumps(value, indent=indent).decode("utf-8")


def iter_dumps(value: Any, *, indent: bool = False, chunk: int = STREAM_CHUNK) -> Iterator[bytes]:
    """`dumps(value)` in pieces of about `chunk` bytes, for a streamed download.

    The top levels are written by walking them (explicit stack), and every value below is
    written whole by `dumps`: the memory used is one piece plus the biggest such value,
    never the whole document. Same text as `dumps(value, indent=indent)`.
    """
    if not isinstance(value, dict | list) or not value:
        yield dumps(value, indent=indent)
        return
    parts: list[bytes] = []
    size = written = 0
    for piece in _pieces(value, indent):
        parts.append(piece)
        size += len(piece)
        written += len(piece)
        if size >= chunk:
            yield b"".join(parts)
            parts, size = [], 0
    if parts:
        yield b"".join(parts)
    note_heavy(written)


# How `_pieces` cuts a document: wide containers (this many items or more) are walked and
# their items written `_BATCH` at a time; narrow ones are walked while this shallow (a narrow
# top can hold a big value: {"data": {"items": [...]}}); everything else is written whole.
_WIDE = 64
_WALK_LEVELS = 3
_BATCH = 256


def _pieces(value: dict | list, indent: bool) -> Iterator[bytes]:
    """The text of `value` as many small pieces (see iter_dumps); explicit stack."""
    newline = b"\n" if indent else b""
    # Frames: [iterator over (key or None, item), is a dict, level, items written, wide]
    stack: list[list[Any]] = []

    def opened(container: dict | list, level: int) -> bytes:
        is_dict = isinstance(container, dict)
        items = iter(container.items()) if is_dict else ((None, item) for item in container)
        stack.append([items, is_dict, level, 0, len(container) >= _WIDE])
        return b"{" if is_dict else b"["

    def walked(item: Any, level: int, wide: bool) -> bool:
        return (
            isinstance(item, dict | list)
            and bool(item)
            and len(stack) < MAX_DEPTH
            and (len(item) >= _WIDE or (not wide and level + 1 < _WALK_LEVELS))
        )

    yield opened(value, 0)
    while stack:
        frame = stack[-1]
        items, is_dict, level, written, wide = frame
        pair = next(items, None)
        if pair is None:
            stack.pop()
            close = b"}" if is_dict else b"]"
            yield (newline + b"  " * level + close) if indent and written else close
            continue
        sep = (b"," if written else b"") + newline
        key, item = pair
        if walked(item, level, wide):
            frame[3] = written + 1
            yield sep + _member(key, is_dict, level, indent) + opened(item, level + 1)
            continue
        batch = [pair]
        while wide and len(batch) < _BATCH:
            following = next(items, None)
            if following is None:
                break
            if walked(following[1], level, wide):
                frame[0] = itertools.chain([following], items)
                break
            batch.append(following)
        frame[3] = written + len(batch)
        yield sep + _batch(batch, is_dict, level, indent)


def _member(key: Any, is_dict: bool, level: int, indent: bool) -> bytes:
    """What comes before an item of a container at `level`: its indent, and its key."""
    pad = b"  " * (level + 1) if indent else b""
    if not is_dict:
        return pad
    return pad + dumps(key if isinstance(key, str) else str(key)) + (b": " if indent else b":")


def _batch(batch: list[tuple[Any, Any]], is_dict: bool, level: int, indent: bool) -> bytes:
    """Items of a container at `level`, written together: one dumps of them all, brackets
    cut off and lines shifted to their level (a JSON text has newlines only between tokens,
    never inside a string)."""
    if len(batch) > 1:
        container = dict(batch) if is_dict else [item for _, item in batch]
        try:
            text = dumps(container, indent=indent)
        except JsonTooDeep:  # one level more than each item: written one by one below
            pass
        else:
            if not indent:
                return text[1:-1]
            inner = text[2:-2]  # without "[\n" and "\n]"
            if not level:
                return inner
            extra = b"  " * level
            return extra + inner.replace(b"\n", b"\n" + extra)
    out = []
    for index, (key, item) in enumerate(batch):
        text = dumps(item, indent=indent)
        if indent and b"\n" in text:
            text = text.replace(b"\n", b"\n" + b"  " * (level + 1))
        sep = (b",\n" if indent else b",") if index else b""
        out.append(sep + _member(key, is_dict, level, indent) + text)
    return b"".join(out)


# --- memory ----------------------------------------------------------------------------------

_SAMPLE = 64  # children measured in a long container; the others are assumed alike


def sizeof(value: Any) -> int:
    """About how many bytes of RAM a decoded JSON value holds (objects, keys, strings, numbers).

    Exact (`sys.getsizeof` of everything) for small containers; a long one is measured on
    `_SAMPLE` children spread across it and scaled up, so a 10 MB payload is sized in a few
    milliseconds, not the ~0.2 s an exact walk takes. Keys shared between objects (orjson
    and the stdlib reuse them) are counted once per sample.
    """
    getsizeof = sys.getsizeof
    seen: set[int] = set()
    total = 0.0
    stack: list[tuple[Any, float]] = [(value, 1.0)]
    pop, push = stack.pop, stack.append
    while stack:
        current, weight = pop()
        total += getsizeof(current) * weight
        if isinstance(current, dict):
            keys = list(current)
            chosen = _spread(keys)
            share = weight * len(keys) / len(chosen) if chosen else weight
            for key in chosen:
                if id(key) not in seen:
                    seen.add(id(key))
                    total += getsizeof(key) * share
                push((current[key], share))
        elif isinstance(current, list | tuple):
            chosen = _spread(current)
            share = weight * len(current) / len(chosen) if chosen else weight
            for item in chosen:
                push((item, share))
    note_heavy(int(total) // 4)  # decoded values weigh ~4 times their JSON
    return int(total)


def _spread(items: Any) -> list[Any]:
    if len(items) <= _SAMPLE:
        return list(items)
    step = len(items) / _SAMPLE
    return [items[int(i * step)] for i in range(_SAMPLE)]


_libc: Any = None
_libc_lock = threading.Lock()
HEAVY_BYTES = 1 << 20  # JSON work this big leaves megabytes of freed memory behind
_heavy = threading.local()


def note_heavy(size: int) -> None:
    """Remember that this thread handled `size` bytes of JSON (see release_after_heavy)."""
    if size >= HEAVY_BYTES:
        _heavy.flag = True


def release_after_heavy(**_: Any) -> None:
    """After a request (or task) that handled a big payload: `release_memory()`.

    Connected to Django's request_finished, so it runs once the response is sent and the
    request's objects are gone; a no-op after requests that handled no big JSON.
    """
    if getattr(_heavy, "flag", False):
        _heavy.flag = False
        release_memory()


def release_memory() -> None:
    """Give freed heap memory back to the system (glibc's malloc_trim), after big payloads.

    Decoding a 10 MB payload allocates ~40 MB of small objects; once they are freed,
    glibc keeps most of it for reuse, and a web process that served a few such views would
    keep hundreds of MB it no longer uses. A no-op where glibc is not the allocator.
    """
    global _libc
    with _libc_lock:
        if _libc is None:
            name = ctypes.util.find_library("c")
            try:
                lib = ctypes.CDLL(name) if name else False
                _libc = lib if lib and hasattr(lib, "malloc_trim") else False
            except OSError:
                _libc = False
        if _libc:
            _libc.malloc_trim(0)


def _connect() -> None:
    """Release memory after requests and Celery tasks that handled big JSON."""
    from django.core.signals import request_finished

    request_finished.connect(release_after_heavy, dispatch_uid="qflowui.jsonio.release")
    try:
        from celery.signals import task_postrun
    except ImportError:  # pragma: no cover - celery is a dependency
        return
    task_postrun.connect(release_after_heavy, dispatch_uid="qflowui.jsonio.release", weak=False)


_connect()


__all__ = [
    "MAX_DEPTH",
    "PRUNED",
    "JsonTooDeep",
    "dumps",
    "dumps_text",
    "iter_dumps",
    "loads",
    "loads_pruned",
    "note_heavy",
    "release_after_heavy",
    "release_memory",
    "sizeof",
    "too_deep",
]
