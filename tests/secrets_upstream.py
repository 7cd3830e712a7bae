"""A hostile QFlow on a loopback server whose data carries every secret shape (no tests here).

Each secret value is unique and appears in payloads, step records, step errors, execution
tags/variables/categories/details, the workflow definition, QFlow's error messages and its
run responses. `SECRETS` lists the values that must never leave masked; `ORDINARY` lists
texts that merely contain the words token, secret, key or password and must stay readable.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from werkzeug import Request, Response

WORKFLOW_ID = "5ec7e700-0000-4000-8000-000000000001"
EXEC_A = "5ec7e700-aaaa-4000-8000-00000000000a"  # failed, with every secret in its data
EXEC_B = "5ec7e700-bbbb-4000-8000-00000000000b"  # QFlow answers 500 with a password
RUN_EXECUTION = "5ec7e700-cccc-4000-8000-00000000000c"

_AWS_SECRET = ("AwsLeak/K7MDENG+bPxRfiCY" + "Q1w2E3r4T5y6U7i8O9p0")[:40]
_GITHUB = "ghp_" + ("GhLeak" + "Zx9" * 12)[:36]
_GITHUB_PAT = "github_pat_11LEAK0000" + "_" + "PatLeakAbCdEfGhIjKlMnOpQrStUvWxYz0123456789ab"
_SLACK = "xoxb-1234567890-0987654321-SlackLeakTokenAbc"
_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqd3RMZWFrIn0.JwtLeakSig0123456789"
_BASIC = "QmFzaWNMZWFrOnBhc3N3b3JkMTIz"

SECRETS: dict[str, str] = {
    "postgres url": "PgLeak-Pw1x",
    "mongodb url": "MongoLeak-Pw2x",
    "redis url": "RedisLeak-Pw3x",
    "https url": "HttpLeak-Pw4x",
    "Name/Value": "NvLeak-33ee",
    "Key/Value": "KvLeak-22ff",
    "name/value": "K8sLeak-11gg",
    "pwd": "PwdLeak-1a9",
    "pass": "PassLeak-2b8",
    "passwd": "PasswdLeak-3c7",
    "pin": "PinLeak-4d6",
    "pat": "PatKeyLeak-5e5",
    "X-Api-Key": "XApiLeak-6f4",
    "client.secret": "CliSecLeak-7g3",
    "12 digits under a secret key": "918273645501",
    "github": _GITHUB,
    "github pat": _GITHUB_PAT,
    "slack": _SLACK,
    "basic": _BASIC,
    "bearer": "BearerLeak-x8Kd02mZpq",
    "openssh key": "b3BlbnNzaC1rZXktdjEAAAAASshLeak",
    "azure account key": "AzKeyLeak+9xYz0Q==",
    "azure shared access key": "SasKeyLeak0Qw9=",
    "azure sig": "SigLeak%2Bq9Zr7",
    "google private_key": "GcpPemLeakMIIEvQ",
    "jwt": "JwtLeakSig0123456789",
    "aws secret": _AWS_SECRET,
    "password=": "FreeLeak-Pw91",
    "token:": "TokLeak-77aa9",
    "secret:": "SecLeak-66bb8",
    "apiKey=": "ApiLeak-55cc7",
    "Authorization: Bearer": "AuthLeak-44dd6",
    "typed into the run form": "TypedLeak-0zz1",
}
S = SECRETS

PG_URL = f"postgres://dbadmin:{S['postgres url']}@db:5432/prod"
FREE_TEXT = (
    f"connect {PG_URL} failed; password={S['password=']} token: {S['token:']} "
    f"secret: {S['secret:']} apiKey={S['apiKey=']} Authorization: Bearer "
    f"{S['Authorization: Bearer']} retry with {_GITHUB} or {_SLACK}"
)
ORDINARY = [
    "ExpiredToken: The security token included in the request is expired",
    "KeyName",
    "prod-keypair",
    "postgres://dbadmin:",
    "@db:5432/prod",
]

LEAKY: dict[str, Any] = {
    "urls": {
        "db": PG_URL,
        "mongo": f"mongodb+srv://root:{S['mongodb url']}@cluster0.example.net/app",
        "cache": f"redis://:{S['redis url']}@cache:6379/0",
        "webhook": f"https://svc:{S['https url']}@example.com/x",
    },
    "containerDefinitions": [
        {
            "environment": [
                {"Name": "DB_PASSWORD", "Value": S["Name/Value"]},
                {"Name": "LOG_LEVEL", "Value": "debug"},
            ]
        }
    ],
    "Tags": [{"Key": "password", "Value": S["Key/Value"]}, {"Key": "Team", "Value": "secops"}],
    "env": [{"name": "API_TOKEN", "value": S["name/value"]}],
    "login": {
        "pwd": S["pwd"],
        "pass": S["pass"],
        "passwd": S["passwd"],
        "pin": S["pin"],
        "pat": S["pat"],
        "pin_password": S["12 digits under a secret key"],
    },
    "headers": {"X-Api-Key": S["X-Api-Key"], "Authorization": f"Basic {_BASIC}"},
    "client.secret": S["client.secret"],
    "notes": f"deploy key {_GITHUB_PAT}; call with Bearer {S['bearer']}",
    "sshKey": (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        f"{S['openssh key']}\n-----END OPENSSH PRIVATE KEY-----"
    ),
    "storage": (
        "DefaultEndpointsProtocol=https;AccountName=prodstore;"
        f"AccountKey={S['azure account key']};EndpointSuffix=core.windows.net"
    ),
    "bus": (
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;"
        f"SharedAccessKey={S['azure shared access key']}"
    ),
    "sasUrl": f"https://prodstore.blob.core.windows.net/c?sv=2022-11-02&sig={S['azure sig']}",
    "serviceAccount": {
        "type": "service_account",
        "project_id": "gcp-qualys-demo",
        "private_key": (
            f"-----BEGIN PRIVATE KEY-----\n{S['google private_key']}\n-----END PRIVATE KEY-----\n"
        ),
        "client_email": "runner@gcp-qualys-demo.iam.gserviceaccount.com",
    },
    "session": _JWT,
    "leakedKey": {"AccessKeyId": "AKIAIOSFODNN7LEAKID", "SecretAccessKey": _AWS_SECRET},
    "message": FREE_TEXT,
    "KeyName": "prod-keypair",
    "tokenType": "Bearer",
}


def _ms(seconds_ago: float) -> int:
    return int((time.time() - seconds_ago) * 1000)


def _component(node_id: str, name: str, kind: str, nxt: Any = None, **inputs: Any) -> dict:
    return {"id": node_id, "name": name, "type": kind, "next": nxt, "inputs": inputs}


def _step(execution_id: str, node_id: str, kind: str, status: str, order: int, **extra: Any):
    start = _ms(3600 - order * 10)
    record = {
        "id": f"01JT3585YRG0DHQNS9DNN432{order:02d}",
        "nodeId": node_id,
        "nodeType": kind,
        "status": status,
        "eventOrder": order,
        "execution": execution_id,
        "startDate": start,
        "endDate": start + 800,
        "createdAt": start,
        "updatedAt": start + 800,
    }
    record.update(extra)
    return record


@dataclass
class SecretsQflow:
    """Serves one workflow, two executions, their steps and payloads, and POST /run."""

    calls: list[str] = field(default_factory=list)
    posted: list[dict[str, Any]] = field(default_factory=list)

    def definition(self) -> dict[str, Any]:
        return {
            "variables": [
                {"key": "region", "value": ["us-east-1"]},
                {"key": "dbUrl", "value": [PG_URL]},
                {"key": "apiToken", "value": [S["token:"]]},
            ],
            "components": [
                _component("trigger", "Trigger", "trigger", "fetch", event={"value": LEAKY}),
                _component("fetch", "Fetch config", "action", "apply", config=LEAKY),
                _component("apply", "Apply", "action", None, note=FREE_TEXT),
            ],
        }

    def workflow(self) -> dict[str, Any]:
        return {
            "id": WORKFLOW_ID,
            "workflow": WORKFLOW_ID,
            "name": "Rotate leaked keys",
            "description": f"Rotates keys. Ops note: {FREE_TEXT}",
            "revision": "r1",
            "deployed": True,
            "createdAt": _ms(86400),
            "updatedAt": _ms(7200),
            "tags": ["created_by=0ffaf046-768b-79fc-83f6-aa25be52c2a1", f"db={PG_URL}"],
            "definition": json.dumps(self.definition()),
        }

    def steps(self, execution_id: str) -> list[dict[str, Any]]:
        return [
            _step(execution_id, "trigger", "trigger", "Success", 1, details=LEAKY),
            _step(execution_id, "fetch", "action", "Success", 2),
            _step(
                execution_id,
                "apply",
                "action",
                "Failed",
                3,
                error=f"{ORDINARY[0]}. {FREE_TEXT}",
                context={"lastRequest": LEAKY["headers"]},
            ),
        ]

    def execution(self, execution_id: str, status: str = "Failed") -> dict[str, Any]:
        return {
            "id": execution_id,
            "execution": execution_id,
            "workflow": WORKFLOW_ID,
            "status": status,
            "createdAt": _ms(3600),
            "updatedAt": _ms(3500),
            "startDate": _ms(3600),
            "endDate": _ms(3500),
            "source": "PUBLIC_API",
            "executionType": "Simple",
            "tags": [
                "created_by=0ffaf046-768b-79fc-83f6-aa25be52c2a1",
                f"password={S['password=']}",
                f"Authorization: Bearer {S['Authorization: Bearer']}",
                f"db={PG_URL}",
            ],
            "categories": {
                "cloud_providers": ["AWS"],
                "regions": ["us-east-1"],
                "notes": [FREE_TEXT],
            },
            "variables": [
                "region=us-east-1",
                f"dbUrl={PG_URL}",
                f"apiKey={S['apiKey=']}",
                f"ghToken={_GITHUB}",
                f"notes={FREE_TEXT}",
            ],
            "details": LEAKY,
        }

    def payload(self, node_id: str, kind: str) -> Any:
        if kind == "input":
            return {"event": LEAKY, "asText": json.dumps(LEAKY)}
        return {"result": LEAKY, "log": FREE_TEXT, "items": [LEAKY, {"ok": True}]}

    # --- HTTP ---------------------------------------------------------------------------------

    def handler(self, request: Request) -> Response:
        path = request.path
        self.calls.append(f"{request.method} {path}")
        api = "/qflowapi/v1"
        if path == f"{api}/workflows":
            return _json({"total": 1, "items": [self.workflow()]})
        if path == f"{api}/workflows/{WORKFLOW_ID}":
            return _json({"data": self.workflow()})
        if path == f"{api}/workflows/{WORKFLOW_ID}/executions":
            items = [self.execution(EXEC_A), self.execution(EXEC_B, "Success")]
            return _json({"total": len(items), "items": items})
        if path == f"{api}/workflows/{WORKFLOW_ID}/run" and request.method == "POST":
            return self.run(request)
        if path == f"{api}/executions/{EXEC_B}" or path.startswith(f"{api}/executions/{EXEC_B}/"):
            return _json({"status": 500, "message": f"internal error: {FREE_TEXT}"}, 500)
        for execution_id in (EXEC_A, RUN_EXECUTION):
            base = f"{api}/executions/{execution_id}"
            if path == base:
                record = self.execution(execution_id)
                record["steps"] = self.steps(execution_id)
                return _json({"data": record})
            if path == f"{base}/steps":
                steps = self.steps(execution_id)
                return _json({"total": len(steps), "items": steps})
            match = re.fullmatch(rf"{base}/steps/([^/]+)/(input|output)", path)
            if match:
                node, kind = match.groups()
                if node == "fetch" and kind == "output":
                    return _json({"status": 500, "message": f"step store down: {FREE_TEXT}"}, 500)
                return _json(self.payload(node, kind))
        return _json({"status": 404, "message": f"nothing at {path}"}, 404)

    def run(self, request: Request) -> Response:
        body = json.loads(request.get_data() or b"{}")
        self.posted.append(body)
        if isinstance(body.get("input"), dict) and body["input"].get("refuse"):
            return _json({"status": 400, "message": f"invalid input: {FREE_TEXT}, {_JWT}"}, 400)
        return _json(
            {
                "message": f"Workflow started; callback token={S['token:']} via {PG_URL}",
                "executionId": RUN_EXECUTION,
                "data": {"input": body.get("input"), "overrideVariables": [LEAKY["env"][0]]},
            }
        )


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


def serve(httpserver, settings) -> SecretsQflow:
    from qflowui.qflow import auth as qflow_auth

    fake = SecretsQflow()
    httpserver.expect_request(re.compile(".*")).respond_with_handler(fake.handler)
    settings.QFLOW_SIMULATOR = False
    settings.QFLOW_BASE_URL = httpserver.url_for("/").rstrip("/")
    settings.QFLOW_TOKEN = "secrets-upstream-test-token-0123456789"
    settings.QFLOW_CLIENT_ID = ""
    settings.QFLOW_CLIENT_SECRET = ""
    settings.QFLOW_TIMEOUT_SECONDS = 5.0
    qflow_auth.clear_token_cache()
    return fake


def new_key() -> str:
    return str(uuid.uuid4())
