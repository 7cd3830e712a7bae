"""Secrets planted at every depth of what QFlow sends never reach a response body or a log.

A fake QFlow on a loopback server serves one execution whose inputs, outputs, variables,
tags, records and error text hide a corpus of secrets; every page, fragment, download and
the export are fetched and searched for them. Identifiers (ARNs, account ids) stay visible.
"""

from __future__ import annotations

import json
import logging

import pytest
from django.core.cache import cache

from qflowui.executions import services
from qflowui.mirror.models import StepPayload
from tests.test_execution_detail_support import (
    EXECUTION_ID,
    FakeQflow,
    component,
    serve_fake,
    step,
)

pytestmark = pytest.mark.django_db(transaction=True)

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbmFseXN0IiwiZXhwIjo5OTk5fQ.c2lnbmF0dXJlLXNlY3JldC1ieXRlcw"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzSECRET012"
PEM_BODY = "MIIEpAIBAAKCAQEAsecretpemlinecontent"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"
ARN = "arn:aws:iam::123456789012:role/QFLOW_ROLE"
ACCOUNT = "123456789012"

SECRETS = {
    "jwt": JWT.split(".")[2],
    "aws": AWS_SECRET,
    "pem": PEM_BODY,
    "password": "hunter2-password-value",
    "client_secret": "Sup3r-client-secret-value",
    "token": "tok-ABCDEF-123456",
    "apikey": "apikey-value-7777",
    "bearer": "opaque-bearer-value-123",
    "private_key": "pk-value-999",
    "credential": "credential-secret-555",
    "var_password": "var-password-value-42",
    "var_apikey": "var-apikey-value-43",
    "tag_token": "tag-token-value-44",
    "error_password": "error-password-45",
    "error_bearer": "error-bearer-value-46",
    "nested_json": "nested-json-secret-47",
    "step_raw": "raw-step-secret-48",
    "exec_raw": "exec-raw-apikey-49",
    "kv_form": "kv-form-secret-51",
    "upper": "UPPER-CASE-PASSWORD-52",
    "session": "session-key-value-53",
}

INPUT = {
    "method": "describeInstances",
    "credentials": {"roleArn": ARN, "accountId": ACCOUNT, "secretKey": SECRETS["credential"]},
    "PASSWORD": SECRETS["upper"],
    "headers": {"Authorization": f"Bearer {SECRETS['bearer']}", "x-api-key": SECRETS["apikey"]},
    "variables": [{"key": "clientSecret", "value": SECRETS["kv_form"]}],
    "deep": {"a": {"b": {"c": {"d": {"e": {"Client_Secret": SECRETS["client_secret"]}}}}}},
}
OUTPUT = {
    "collection": [
        {
            "InstanceId": "i-0abc",
            "OwnerId": ACCOUNT,
            "IamInstanceProfile": {"Arn": ARN},
            "UserData": f"#!/bin/sh\nexport KEY='{AWS_SECRET}'\n",
            "Notes": f"rotated {JWT} yesterday",
            "Key": PEM,
        },
        {"auth": {"token": SECRETS["token"], "privateKey": SECRETS["private_key"]}},
        {"sessionKey": SECRETS["session"]},
    ],
    "stepMessage": json.dumps({"result": {"client_secret": SECRETS["nested_json"]}}),
    "meta": {"password": SECRETS["password"]},
}


@pytest.fixture
def planted(httpserver, settings):
    cache.clear()
    services.memo_clear()
    components = [
        component("trigger", "Trigger", "trigger", "node-1-resource"),
        component("node-1-resource", "Fetch instances", "resource", "node-2-action"),
        component("node-2-action", "Rotate keys", "action"),
    ]
    components[1]["inputs"] = {"password": "definition-password-50"}
    fake = FakeQflow(
        components=components,
        steps=[
            step("trigger", "trigger", "Success", 1),
            step(
                "node-1-resource", "resource", "Success", 2, details={"secret": SECRETS["step_raw"]}
            ),
            step(
                "node-2-action",
                "action",
                "Failed",
                3,
                error=(
                    f"Login failed: password={SECRETS['error_password']}; "
                    f"Authorization: Bearer {SECRETS['error_bearer']} with {JWT}"
                ),
            ),
        ],
        inputs={"node-1-resource": INPUT, "node-2-action": {"apiKey": SECRETS["apikey"]}},
        outputs={"node-1-resource": OUTPUT, "trigger": {"token": SECRETS["token"]}},
        execution={
            "variables": [
                "region=us-east-1",
                f"password={SECRETS['var_password']}",
                f"apiKey={SECRETS['var_apikey']}",
            ],
            "tags": [
                "created_by=0ffaf046-768b-79fc-83f6-aa25be52c2a1",
                f"token={SECRETS['tag_token']}",
            ],
            "details": {"apiKey": SECRETS["exec_raw"], "executionEndDate": None},
        },
    )
    return serve_fake(httpserver, settings, fake)


def _bodies(client) -> dict[str, str]:
    base = f"/executions/{EXECUTION_ID}/"
    step = f"{base}steps/node-1-resource/"
    htmx = {"HTTP_HX_REQUEST": "true"}
    urls = {
        "page": (base, {}),
        "page+step": (f"{base}?step=node-1-resource", {}),
        "failed step": (f"{base}?step=node-2-action", {}),
        "live": (base, {**htmx, "HTTP_HX_TARGET": "live"}),
        "panel": (step, {}),
        "panel fragment": (step, htmx),
        "input tree": (f"{step}input/tree", htmx),
        "output tree": (f"{step}output/tree", htmx),
        "panel cached": (step, htmx),
        "subtree": (f"{step}output/tree?path=/collection/1/auth", htmx),
        "deep subtree": (f"{step}input/tree?path=/deep/a/b/c/d/e", htmx),
        "string whole": (f"{step}output/tree?path=/collection/0/Key&full=1", htmx),
        "decoded string": (f"{step}output/tree?path=/stepMessage/result", htmx),
        "table": (f"{step}output/tree?path=/collection&view=table", htmx),
        "search key": (f"{step}output/tree?q=password", htmx),
        "search value": (f"{step}input/tree?q=secret", htmx),
        "search page": (f"{step}output/tree?q=token", {}),
        "input download": (f"{step}input.json", {}),
        "output download": (f"{step}output.json", {}),
        "path download": (f"{step}output.json?path=/collection/1", {}),
        "trigger output": (f"{base}steps/trigger/output/tree", htmx),
        "action input": (f"{base}steps/node-2-action/input/tree", htmx),
        "export": (f"{base}export.json", {}),
    }
    out = {}
    for name, (url, headers) in urls.items():
        response = client.get(url, **headers)
        assert response.status_code in (200, 286), (name, response.status_code)
        out[name] = response.content.decode()
    return out


def test_no_planted_secret_reaches_any_page_fragment_download_or_the_export(
    planted, viewer_client, caplog
):
    caplog.set_level(logging.DEBUG)

    bodies = _bodies(viewer_client)

    leaks = [
        (where, name)
        for where, body in bodies.items()
        for name, secret in SECRETS.items()
        if secret in body or json.dumps(secret)[1:-1] in body
    ]
    assert leaks == []
    assert "definition-password-50" not in "".join(bodies.values())
    logged = caplog.text
    assert not [name for name, secret in SECRETS.items() if secret in logged]


def test_identifiers_stay_visible_while_their_secrets_are_masked(planted, viewer_client):
    bodies = _bodies(viewer_client)

    download = json.loads(bodies["input download"])
    assert download["credentials"] == {
        "roleArn": ARN,
        "accountId": ACCOUNT,
        "secretKey": "********",
    }
    assert ARN in bodies["output download"] and ACCOUNT in bodies["output download"]
    assert "region=us-east-1" in bodies["page"]
    assert "i-0abc" in bodies["output download"]
    assert "Login failed: password=********" in bodies["failed step"]


def test_payloads_are_masked_before_they_are_stored(planted, viewer_client):
    _bodies(viewer_client)

    stored = json.dumps([p.body for p in StepPayload.objects.all()])

    assert StepPayload.objects.count() >= 4
    assert not [name for name, secret in SECRETS.items() if secret in stored]


def _text(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize(
    "value",
    [
        INPUT,
        OUTPUT,
        {"to-ken": "x"},
        {"Pass_Word": "x"},
        {"api key": "x"},
        {"TO\u212aEN": "x"},  # the Kelvin sign lower-cases to an ASCII k
        {'to"ken': "x"},
        {"note": "Authorization: Basic dXNlcjpwYXNz"},
        {"k": "AKIAIOSFODNN7EXAMPLEwJalrXUtnFEMIK7MDENGbPx"},
        {"k": "MIIabc -----BEGIN PRIVATE KEY----- x"},
        {"nested": json.dumps({"client_secret": "x"})},
        {"k": "\u0000token"},
    ],
)
def test_the_quick_check_never_calls_a_payload_with_a_secret_clean(value):
    assert not services.nothing_to_mask(_text(value))


def test_the_quick_check_is_sound_on_realistic_payloads(simulator):
    from qflowui.simulator import payloads

    ds = simulator.dataset()
    clean = checked = 0
    for ex in ds.executions[200:260]:
        for step_ in ex.steps:
            for kind in ("input", "output"):
                value = json.loads(payloads.payload_text(ds, ex, step_, kind, step_.status))
                checked += 1
                if services.nothing_to_mask(_text(value)):
                    clean += 1
                    assert services.mask_payload(value) == value
    big = ds.execution(ds.big_payloads[0][0])
    node = next(s for s in big.steps if s.node_id == ds.big_payloads[0][1])
    inventory = payloads.payload_text(ds, big, node, "output", "Success")
    assert services.nothing_to_mask(inventory.replace(", ", ","))
    assert checked > 100 and clean > 0
