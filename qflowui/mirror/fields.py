"""Model fields of the mirror.

`JsonTextField`: a JSON value kept as its compact JSON text in a text column, written and
read by orjson (`qflowui.core.jsonio`: the 512-level depth bound holds both ways).

Django's JSONField encodes and decodes with the stdlib `json` (~0.2 s each way for a 10 MB
step payload) and PostgreSQL's jsonb parses the text again on every write and prints it
again on every read; a step payload is only ever written whole and read whole, so it is
kept as the text orjson wrote. What a view needs without the whole value (the first view of
a large payload, a search's quick check) reads other columns, or the text itself
(`JsonTextField.raw`), without decoding it.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models.functions import Cast

from qflowui.core import jsonio


class JsonText(str):
    """JSON text already written (by jsonio.dumps): stored as it is, not encoded again."""

    __slots__ = ()


class JsonTextField(models.TextField):
    """A JSON value (None is SQL NULL) stored as its JSON text; decoded with jsonio.loads."""

    description = "A JSON value stored as its JSON text"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        return jsonio.loads(value)

    def to_python(self, value: Any) -> Any:
        return value  # a decoded value already (forms and full_clean must not make it a str)

    def get_prep_value(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, JsonText):
            return str(value)
        return jsonio.dumps_text(value)

    def value_to_string(self, obj: Any) -> Any:
        return self.value_from_object(obj)  # as JSONField: serializers write the value itself

    @staticmethod
    def raw(name: str) -> Cast:
        """An expression for the column's text as stored (annotate/values), not decoded."""
        return Cast(name, models.TextField())
