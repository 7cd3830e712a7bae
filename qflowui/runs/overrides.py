"""Run variables: the documented overrides, their per-cloud grouping, and value checks.

QFlow's run API (QFLOW-API.md §4) takes `connectorId` for every cloud, AWS `region`, Azure
`resourceGroup`, GCP `project`, OCI `oci_region` and `compartment`, the legacy
`credentials*` connector references, and custom user-defined variables of types String,
Integer, Boolean, List and JSON.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from qflowui.core.masking import MASK

AWS_REGIONS = (
    ("us-east-1", "US East (N. Virginia)"),
    ("us-east-2", "US East (Ohio)"),
    ("us-west-1", "US West (N. California)"),
    ("us-west-2", "US West (Oregon)"),
    ("ca-central-1", "Canada (Central)"),
    ("ca-west-1", "Canada West (Calgary)"),
    ("mx-central-1", "Mexico (Central)"),
    ("sa-east-1", "South America (São Paulo)"),
    ("eu-central-1", "Europe (Frankfurt)"),
    ("eu-central-2", "Europe (Zurich)"),
    ("eu-west-1", "Europe (Ireland)"),
    ("eu-west-2", "Europe (London)"),
    ("eu-west-3", "Europe (Paris)"),
    ("eu-south-1", "Europe (Milan)"),
    ("eu-south-2", "Europe (Spain)"),
    ("eu-north-1", "Europe (Stockholm)"),
    ("il-central-1", "Israel (Tel Aviv)"),
    ("me-south-1", "Middle East (Bahrain)"),
    ("me-central-1", "Middle East (UAE)"),
    ("af-south-1", "Africa (Cape Town)"),
    ("ap-east-1", "Asia Pacific (Hong Kong)"),
    ("ap-east-2", "Asia Pacific (Taipei)"),
    ("ap-south-1", "Asia Pacific (Mumbai)"),
    ("ap-south-2", "Asia Pacific (Hyderabad)"),
    ("ap-northeast-1", "Asia Pacific (Tokyo)"),
    ("ap-northeast-2", "Asia Pacific (Seoul)"),
    ("ap-northeast-3", "Asia Pacific (Osaka)"),
    ("ap-southeast-1", "Asia Pacific (Singapore)"),
    ("ap-southeast-2", "Asia Pacific (Sydney)"),
    ("ap-southeast-3", "Asia Pacific (Jakarta)"),
    ("ap-southeast-4", "Asia Pacific (Melbourne)"),
    ("ap-southeast-5", "Asia Pacific (Malaysia)"),
    ("ap-southeast-6", "Asia Pacific (New Zealand)"),
    ("ap-southeast-7", "Asia Pacific (Thailand)"),
    ("us-gov-east-1", "AWS GovCloud (US-East)"),
    ("us-gov-west-1", "AWS GovCloud (US-West)"),
    ("cn-north-1", "China (Beijing)"),
    ("cn-northwest-1", "China (Ningxia)"),
)
AWS_REGION_CODES = frozenset(code for code, _ in AWS_REGIONS)

# Offered in a datalist; any well-formed region identifier is accepted (OCI adds regions often).
OCI_REGIONS = (
    "us-ashburn-1", "us-phoenix-1", "us-sanjose-1", "us-chicago-1", "ca-toronto-1",
    "ca-montreal-1", "sa-saopaulo-1", "sa-vinhedo-1", "sa-santiago-1", "sa-bogota-1",
    "mx-queretaro-1", "mx-monterrey-1", "uk-london-1", "uk-cardiff-1", "eu-frankfurt-1",
    "eu-zurich-1", "eu-amsterdam-1", "eu-madrid-1", "eu-marseille-1", "eu-milan-1",
    "eu-paris-1", "eu-stockholm-1", "me-jeddah-1", "me-dubai-1", "me-abudhabi-1",
    "me-riyadh-1", "il-jerusalem-1", "af-johannesburg-1", "ap-mumbai-1", "ap-hyderabad-1",
    "ap-tokyo-1", "ap-osaka-1", "ap-seoul-1", "ap-chuncheon-1", "ap-singapore-1",
    "ap-singapore-2", "ap-sydney-1", "ap-melbourne-1", "ap-batam-1",
)  # fmt: skip

# The documented variables, in the order they are sent and shown, with the cloud they apply to.
CONNECTOR_FIELDS = ("connectorId",)
CLOUD_FIELDS = {
    "AWS": ("region",),
    "Azure": ("resourceGroup",),
    "GCP": ("project",),
    "OCI": ("oci_region", "compartment"),
}
LEGACY_FIELDS = ("credentials", "credentials_azure", "credentials_gcp")
SYSTEM_FIELDS = (
    *CONNECTOR_FIELDS,
    *(name for names in CLOUD_FIELDS.values() for name in names),
    *LEGACY_FIELDS,
)
FIELD_CLOUD = {name: cloud for cloud, names in CLOUD_FIELDS.items() for name in names}
FIELD_CLOUD.update({"credentials": "AWS", "credentials_azure": "Azure", "credentials_gcp": "GCP"})


def cloud_name(cloud: str | None) -> str:
    """QFlow spells clouds AWS, Azure or AZURE...: the spelling CLOUD_FIELDS uses, or ""."""
    wanted = (cloud or "").strip().upper()
    return next((name for name in CLOUD_FIELDS if name.upper() == wanted), "")


VARIABLE_TYPES = ("String", "Integer", "Boolean", "List", "JSON")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_AZURE_RG = re.compile(r"^[-\w.()]{0,89}[-\w()]$")
_GCP_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_OCI_REGION = re.compile(r"^[a-z]{2,3}-[a-z]+-\d{1,2}$")
_OCI_COMPARTMENT = re.compile(r"^ocid1\.(compartment|tenancy)\.oc\d+\.[a-z0-9-]*\.[a-z0-9]{10,}$")
_INTEGER = re.compile(r"^[+-]?\d{1,18}$")
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def clean_uuid(value: str, what: str = "connector id") -> str:
    """A UUID in canonical lowercase form; a leading "@" (QFlow's reference style) is allowed."""
    text = value.strip().removeprefix("@").strip()
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        raise ValidationError(
            f"“{value.strip()[:80]}” is not a valid {what}: expected a UUID such as "
            "aa70acae-6ea8-3acf-b504-f327855b316a."
        ) from None
    if len(text.replace("-", "")) != 32 or text.startswith(("{", "urn:")):
        raise ValidationError(f"“{value.strip()[:80]}” is not a valid {what}: expected a UUID.")
    return str(parsed)


def clean_connector_reference(value: str) -> str:
    """Legacy credentials variables reference a connector as "@<uuid>", as definitions do."""
    return "@" + clean_uuid(value, "connector reference")


def clean_resource_group(value: str) -> str:
    value = value.strip()
    if not _AZURE_RG.match(value):
        raise ValidationError(
            "An Azure resource group name has 1 to 90 letters, digits, underscores, hyphens, "
            "periods or parentheses, and does not end with a period."
        )
    return value


def clean_project(value: str) -> str:
    value = value.strip()
    if not _GCP_PROJECT.match(value):
        raise ValidationError(
            "A GCP project id has 6 to 30 lowercase letters, digits or hyphens, starts with a "
            "letter and does not end with a hyphen (e.g. gcp-qualys-demo)."
        )
    return value


def clean_oci_region(value: str) -> str:
    value = value.strip()
    if not _OCI_REGION.match(value):
        raise ValidationError(
            f"“{value[:80]}” is not an OCI region identifier (e.g. ap-hyderabad-1)."
        )
    return value


def clean_compartment(value: str) -> str:
    value = value.strip()
    if not _OCI_COMPARTMENT.match(value):
        raise ValidationError(
            "An OCI compartment is an OCID such as ocid1.compartment.oc1..aaaaaaaa…"
        )
    return value


def clean_custom_key(key: str) -> str:
    key = key.strip()
    if not _KEY.match(key):
        raise ValidationError(
            "A variable name starts with a letter or underscore and has up to 64 letters, "
            "digits, underscores, hyphens or periods."
        )
    if key in SYSTEM_FIELDS:
        raise ValidationError(f"Use the {key} field above for {key}.")
    if key == settings.RUNS_CORRELATION_VARIABLE:
        raise ValidationError(
            f"{key} is set by qflowui on every run (it ties the run to its execution in QFlow); "
            "it cannot be typed."
        )
    return key


def convert_value(kind: str, text: str) -> Any:
    """A custom variable's text converted to its declared type, or ValidationError."""
    raw = text.strip()
    if kind == "String":
        return text
    if kind == "Integer":
        if not _INTEGER.match(raw):
            raise ValidationError(f"“{raw[:40]}” is not a whole number (Integer).")
        return int(raw)
    if kind == "Boolean":
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValidationError(f"“{raw[:40]}” is not a Boolean: use true or false.")
    if kind == "List":
        if raw.startswith("["):
            value = _json(raw, "List")
            if not isinstance(value, list):
                raise ValidationError("A List is a JSON array or comma-separated values.")
            return value
        return [item.strip() for item in raw.split(",") if item.strip()]
    if kind == "JSON":
        return _json(raw, "JSON")
    raise ValidationError(f"Unknown type {kind!r}: use one of {', '.join(VARIABLE_TYPES)}.")


def _json(raw: str, kind: str) -> Any:
    return parse_json(
        raw,
        what=f"a {kind} value",
        max_bytes=max_variable_bytes(),
        max_depth=max_input_depth(),
    )


# --- limits on what the form accepts ---------------------------------------------------------


def max_input_bytes() -> int:
    """The input JSON's size limit, in UTF-8 bytes of the text as typed."""
    return settings.RUNS_MAX_INPUT_BYTES


def max_input_depth() -> int:
    """How deep objects and arrays may nest in the input (and in a JSON variable)."""
    return settings.RUNS_MAX_INPUT_DEPTH


def max_custom_variables() -> int:
    return settings.RUNS_MAX_CUSTOM_VARIABLES


def max_variable_bytes() -> int:
    """One variable value's size limit, in UTF-8 bytes."""
    return settings.RUNS_MAX_VARIABLE_BYTES


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def size_text(size: int) -> str:
    """1,000,000 -> "1 MB (1,000,000 bytes)"; 10,000 -> "10 KB (10,000 bytes)"."""
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if size >= scale:
            return f"{size / scale:.3g} {unit} ({size:,} bytes)"
    return f"{size:,} bytes"


# Between two interesting characters of JSON text: anything but a quote or a bracket.
_JSON_PLAIN = re.compile(r'[^"\[\]{}]*')
# The rest of a JSON string after its opening quote, up to (not including) its closing one.
_JSON_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Do objects and arrays in this JSON text nest deeper than `limit`?

    A linear scan, no recursion, that stops at the first level past the limit: made before
    json.loads, which itself fails with RecursionError on very deep text (and everything
    that walks the value afterwards would too). Brackets inside strings do not count.
    """
    depth, pos, end = 0, 0, len(text)
    while True:
        pos = _JSON_PLAIN.match(text, pos).end()
        if pos >= end:
            return False
        char = text[pos]
        if char == '"':
            pos = _JSON_STRING_REST.match(text, pos + 1).end() + 1
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
            pos += 1
        else:
            depth -= 1
            pos += 1


class _NotJsonConstant(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJsonConstant(name)


def parse_json(text: str, *, what: str, max_bytes: int, max_depth: int, invalid: str = "") -> Any:
    """JSON text typed in the form, within its limits, or ValidationError saying why not.

    `what` names it in the messages ("the input", "a JSON value"), `invalid` starts the
    message for text that is not JSON. NaN, Infinity and
    -Infinity are refused: they are not JSON, and QFlow would refuse them or worse.
    """
    if len(text) > max_bytes or (len(text) * 4 > max_bytes and utf8_size(text) > max_bytes):
        raise ValidationError(
            f"{what[:1].upper()}{what[1:]} is {size_text(utf8_size(text))}; "
            f"the limit is {size_text(max_bytes)}."
        )
    if json_depth_exceeds(text, max_depth):
        raise ValidationError(
            f"{what[:1].upper()}{what[1:]} nests objects and arrays more than {max_depth} "
            f"levels deep; the limit is {max_depth} levels."
        )
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except _NotJsonConstant as exc:
        others = " and ".join(c for c in ("NaN", "Infinity", "-Infinity") if c != str(exc))
        raise ValidationError(
            f"{exc} is not JSON (neither are {others}): "
            f"write null, a number or a string in {what} instead."
        ) from None
    except RecursionError:  # the scan above should make this unreachable
        raise ValidationError(
            f"{what[:1].upper()}{what[1:]} nests objects and arrays too deeply."
        ) from None
    except ValueError as exc:
        start = invalid or f"Not valid JSON for {what}"
        raise ValidationError(f"{start}: {json_error(exc)}.") from None


def masked_paths(value: Any, root: str = "input", limit: int = 20) -> list[str]:
    """Where a JSON value holds the mask (********), as paths: input.db.password, input.a[0]."""
    found: list[str] = []
    stack: list[tuple[str, Any]] = [(root, value)]
    while stack and len(found) < limit:
        path, item = stack.pop()
        if isinstance(item, str):
            if MASK in item:
                found.append(path)
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                child_path = _json_path(path, str(key))
                if MASK in str(key):
                    found.append(child_path)
                children.append((child_path, child))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(f"{path}[{i}]", child) for i, child in enumerate(item)]))
    return found[:limit]


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _json_path(parent: str, key: str) -> str:
    return f"{parent}.{key}" if _PLAIN_KEY.match(key) else f"{parent}[{json.dumps(key)}]"


def holds_mask(value: Any) -> bool:
    """Does this value (a string, or any JSON value) contain the mask anywhere?"""
    if isinstance(value, str):
        return MASK in value
    return MASK in json.dumps(value, ensure_ascii=False)


def json_error(exc: ValueError) -> str:
    """json's message with its position, e.g. "Expecting ',' delimiter (line 3, column 5)"."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
    return str(exc)


def guess_type(value: Any) -> tuple[str, str]:
    """(type, text) for showing a known value in a custom-variable row."""
    if isinstance(value, bool):
        return "Boolean", "true" if value else "false"
    if isinstance(value, int):
        return "Integer", str(value)
    if isinstance(value, list):
        return "List", json.dumps(value)
    if isinstance(value, dict):
        return "JSON", json.dumps(value)
    return "String", "" if value is None else str(value)


@dataclass(frozen=True)
class VariableString:
    """One of an execution's `variables` entries, "key=value"."""

    key: str
    value: str


def parse_variable_strings(items: list[Any]) -> list[VariableString]:
    out = []
    for item in items or []:
        if isinstance(item, str) and "=" in item:
            key, _, value = item.partition("=")
            if key.strip():
                out.append(VariableString(key.strip(), value))
    return out


def listed_value_matches(listed: str, sent: Any) -> bool:
    """Does an execution's listed "key=value" text say the value we sent?"""
    if isinstance(sent, str):
        return listed == sent
    try:
        return json.loads(listed) == sent
    except ValueError:
        return listed == str(sent)
