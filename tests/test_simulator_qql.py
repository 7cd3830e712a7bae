"""The simulator's small QQL parser, used by the `query` parameter."""

from __future__ import annotations

import pytest

from qflowui.simulator import qql

FIELDS: qql.FieldSpec = {
    "status": (lambda r: r["status"], "eq"),
    "source": (lambda r: r["source"], "eq"),
    "qflow.name": (lambda r: r["name"], "contains"),
}


def matches(query: str, **record: str) -> bool:
    predicate = qql.compile_query(query, FIELDS)
    assert predicate is not None
    return predicate({"status": "", "source": "", "name": "", **record})


def test_an_empty_query_filters_nothing():
    assert qql.compile_query("  ", FIELDS) is None


def test_the_client_s_grouped_status_filter_is_understood():
    query = '(source: UI) AND (status: Success OR status: "Timed Out")'
    assert matches(query, status="Timed Out", source="UI")
    assert not matches(query, status="Failed", source="UI")
    assert not matches(query, status="Success", source="EVENT")


def test_values_match_case_insensitively_but_backticks_match_exactly():
    assert matches("status: success", status="Success")
    assert not matches("status: `success`", status="Success")
    assert matches("status: `Success`", status="Success")


def test_an_unquoted_value_may_span_words_and_names_match_by_substring():
    assert matches("status: Timed Out", status="Timed Out")
    assert matches(
        "qflow.name: Publicly accessible RDS", name="Publicly accessible RDS DB Instances"
    )


def test_not_and_escaped_quotes_are_supported():
    assert matches("NOT status: Success", status="Failed")
    assert matches(r'qflow.name: "say \"hi\""', name='they say "hi" there')


@pytest.mark.parametrize(
    "query",
    [
        'status: "open',
        "status: a OR",
        ")",
        "status: [a .. b]",
        "status > 3",
        "colour: red",
        "status",
    ],
)
def test_malformed_queries_and_unknown_fields_raise(query):
    with pytest.raises(qql.QQLError):
        qql.compile_query(query, FIELDS)
