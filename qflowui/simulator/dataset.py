"""The demo data set: workflows and ~2,000 executions over 60 days, with their step plans.

Everything is a pure function of (seed, anchor): the same seed gives the same ids, the anchor
(the moment the data set is first built in a process) places the timestamps. An execution's
status is computed from the wall clock (planned start + duration vs now), so executions that are
Running when the data set is built really finish later. Step payloads are generated lazily in
payloads.py.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .catalog import AWS, AZURE, GCP, OCI, SOLUTIONS, SPECS, Spec, build_components
from .config import CANCELLED, FAILED, RUNNING, SUCCESS, TIMED_OUT

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WINDOW_DAYS = 30  # what the API serves
RETENTION_DAYS = 60  # what the data set holds

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def day_key(ms: int) -> str:
    day = datetime.fromtimestamp(ms // DAY_MS * DAY_MS / 1000, tz=UTC)
    return day.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def ulid(ms: int, salt: str) -> str:
    """A ULID-like id: 10 chars of millisecond time, 16 chars derived from `salt`."""
    randomness = int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=10).digest(), "big")
    value = (ms << 80) | randomness
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


@dataclass(frozen=True)
class Connector:
    id: str  # the QFlow connector uuid referenced as "@<id>"
    cloud: str
    account: str  # AWS account, Azure subscription, GCP project or OCI tenancy
    name: str
    portal_id: str


@dataclass
class Workflow:
    id: str
    spec: Spec
    created_ms: int
    updated_ms: int
    created_by: str
    connector: Connector
    defaults: dict[str, str]  # region / resourceGroup / project / oci_region / compartment
    variables: list[dict[str, Any]]
    components: list[dict[str, Any]]
    definition: str
    revision: str
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def cloud(self) -> str:
        return self.spec.cloud

    def record(self) -> dict[str, Any]:
        """The workflow as GET /workflows/{id} `data` and as a list item."""
        return {
            "id": self.id,
            "createdAt": self.created_ms,
            "updatedAt": self.updated_ms,
            "tags": [f"created_by={self.created_by}"],
            "workflow": self.id,
            "revision": self.revision,
            "definition": self.definition,
            "name": self.spec.name,
            "description": self.spec.description,
            "category": self.spec.category,
            "cloudProviders": [self.spec.cloud],
            "deployed": self.spec.deployed,
        }


@dataclass
class Step:
    node_id: str
    node_type: str
    start_ms: int
    end_ms: int
    status: str  # final, canonical
    error: str | None = None
    branch: str | None = None  # the branch a filter took: "true" / "false"
    order: int = 0


@dataclass
class Execution:
    id: str
    workflow_id: str
    cloud: str
    source: str
    created_by: str
    start_ms: int
    end_ms: int
    status: str  # final, canonical; Running until end_ms
    steps: list[Step]
    connector: Connector
    settings: dict[str, str]  # region / resourceGroup / project / oci_region / compartment
    variable_strings: list[str]
    overrides: list[dict[str, Any]] = field(default_factory=list)
    input: dict[str, Any] | None = None  # None: derived (events, parent envelope)
    parent_id: str | None = None
    linked_ids: list[str] = field(default_factory=list)
    big: dict[str, int] = field(default_factory=dict)  # node id -> output size in bytes
    _starts: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._starts = [s.start_ms for s in self.steps]

    def status_at(self, now_ms: int) -> str:
        return RUNNING if now_ms < self.end_ms else self.status

    def steps_at(self, now_ms: int) -> list[tuple[Step, str, int | None]]:
        """(step, status now, end now) for the steps started by now, in event order."""
        started = self.steps[: bisect_right(self._starts, now_ms)]
        return [
            (s, s.status, s.end_ms) if now_ms >= s.end_ms else (s, RUNNING, None) for s in started
        ]

    def step_at(self, node_id: str, now_ms: int) -> tuple[Step, str, int | None] | None:
        for item in self.steps_at(now_ms):
            if item[0].node_id == node_id:
                return item
        return None


@dataclass
class Dataset:
    seed: int
    anchor_ms: int
    customer_id: str
    api_user_id: str
    users: list[str]
    connectors: list[Connector]
    workflows: list[Workflow]
    executions: list[Execution]  # newest first
    big_payloads: list[tuple[str, str, int]]  # (execution id, node id, bytes)
    linked: list[tuple[str, str, str]]  # (parent execution id, qualysevent node id, child id)
    leaks: list[tuple[str, str]]  # (execution id, node id) whose output holds a SecretAccessKey
    by_workflow: dict[str, list[Execution]] = field(default_factory=dict)
    _workflows: dict[str, Workflow] = field(default_factory=dict)
    _executions: dict[str, Execution] = field(default_factory=dict)

    def workflow(self, workflow_id: str) -> Workflow | None:
        return self._workflows.get(workflow_id)

    def execution(self, execution_id: str) -> Execution | None:
        return self._executions.get(execution_id)

    def workflow_by_key(self, key: str) -> Workflow:
        return next(w for w in self.workflows if w.spec.key == key)

    def connector(self, connector_id: str) -> Connector | None:
        return next((c for c in self.connectors if c.id == connector_id), None)


# --- wire records -------------------------------------------------------------------------


def categories(ex: Execution) -> dict[str, list[Any]]:
    cloud, settings = ex.cloud, ex.settings
    return {
        "regions": [settings["region"]]
        if cloud == AWS
        else [settings["oci_region"]]
        if cloud == OCI
        else [],
        "projects": [settings["project"]] if cloud == GCP else [None],
        "solutions": [SOLUTIONS[cloud]],
        "cloud_providers": [cloud],
        "services": [],
        "accounts": [f"@{ex.connector.id}"],
        "resource_groups": [settings["resourceGroup"]] if cloud == AZURE else [],
        "apps": [],
    }


def execution_record(
    ex: Execution, now_ms: int, words: dict[str, str], customer_id: str
) -> dict[str, Any]:
    status = ex.status_at(now_ms)
    end = ex.end_ms if status != RUNNING else None
    if end is not None:
        updated = end + 40 + int(ex.id[:2], 16) % 60
    else:
        started = ex.steps_at(now_ms)
        updated = started[-1][0].start_ms if started else ex.start_ms
    return {
        "execution": ex.id,
        "workflow": ex.workflow_id,
        "endDate": end,
        "parDateKey": day_key(ex.start_ms),
        "executionType": "Simple",
        "source": ex.source,
        "parentExecutionId": ex.parent_id,
        "tags": [f"created_by={ex.created_by}"],
        "createdAt": ex.start_ms,
        "customerId": customer_id,
        "details": {"executionEndDate": end},
        "id": ex.id,
        "categories": categories(ex),
        "startDate": ex.start_ms,
        "linkedExecutionIds": list(ex.linked_ids) or None,
        "updatedAt": updated,
        "status": words[status],
        "variables": list(ex.variable_strings),
    }


def step_record(
    ex: Execution,
    item: tuple[Step, str, int | None],
    words: dict[str, str],
    customer_id: str,
) -> dict[str, Any]:
    step, status, end = item
    record: dict[str, Any] = {
        "id": ulid(step.start_ms, f"{ex.id}/{step.node_id}"),
        "createdAt": step.start_ms,
        "updatedAt": end if end is not None else step.start_ms,
        "tags": [f"created_by={ex.created_by}"],
        "customerId": customer_id,
        "eventOrder": step.order,
        "nodeId": step.node_id,
        "execution": ex.id,
        "nodeType": step.node_type,
        "status": words[status],
        "startDate": step.start_ms,
        "endDate": end,
        "parDateKey": day_key(step.start_ms),
    }
    if end is not None and step.error:
        record["error"] = step.error
    return record


# --- planning ---------------------------------------------------------------------------


def _duration(component: dict[str, Any], rng: random.Random) -> int:
    kind = component["type"]
    if kind == "trigger":
        return rng.randint(8, 60)
    if kind == "resource":
        return rng.randint(1500, 25000)
    if kind == "filter":
        return rng.randint(40, 400)
    if kind == "action":
        return rng.randint(2000, 40000)
    if kind == "wait":
        inputs = component["inputs"]
        if "duration" in inputs:
            return int(inputs["duration"]) * SECOND_MS + rng.randint(5, 900)
        return inputs.get("delay", 15) * SECOND_MS * rng.randint(1, 8) + rng.randint(5, 900)
    if kind == "qualysevent":
        return rng.randint(300, 1500)
    return rng.randint(300, 2500)  # notification


def _timeout_ms(component: dict[str, Any]) -> int:
    return int(component["inputs"].get("timeoutSeconds", 300)) * SECOND_MS


def plan_steps(
    wf: Workflow,
    rng: random.Random,
    start_ms: int,
    final: str,
    *,
    context: dict[str, str],
    total_ms: int | None = None,
    wait_ms: int | None = None,
    force_branch: str | None = None,
) -> tuple[list[Step], int]:
    """One path through the graph with times; ends at a failing step for non-success finals."""
    queue: deque[str] = deque(["trigger"])
    ready: dict[str, int] = {"trigger": start_ms}
    seen: set[str] = set()
    steps: list[Step] = []
    while queue:
        node_id = queue.popleft()
        if node_id in seen:
            continue
        seen.add(node_id)
        component = wf.nodes[node_id]
        begin = ready[node_id] + (rng.randint(20, 400) if steps else 0)
        length = _duration(component, rng)
        if wait_ms is not None and component["type"] == "wait":
            length = wait_ms
        nxt = component["next"]
        branch = None
        if isinstance(nxt, dict):
            branch = "true" if rng.random() < wf.spec.find_rate else "false"
            branch = force_branch or branch
            targets = [nxt[branch]] if branch in nxt else []
        elif isinstance(nxt, list):
            targets = list(nxt)
        else:
            targets = [nxt] if nxt else []
        steps.append(Step(node_id, component["type"], begin, begin + length, SUCCESS, None, branch))
        for target in targets:
            ready[target] = max(ready.get(target, 0), begin + length)
            queue.append(target)
    steps.sort(key=lambda s: (s.start_ms, s.node_id))

    if final != SUCCESS and len(steps) > 1:
        index = _pick_stop(steps, final, rng)
        stop = steps[index]
        del steps[index + 1 :]
        stop.status = final
        component = wf.nodes[stop.node_id]
        if final == TIMED_OUT:
            stop.end_ms = stop.start_ms + _timeout_ms(component)
            stop.error = _timeout_error(component)
        elif final == FAILED:
            stop.error = failure_text(wf, component, rng, context)
        else:
            stop.end_ms = stop.start_ms + (stop.end_ms - stop.start_ms) // 3 + 1

    if total_ms is not None:
        natural = max(s.end_ms for s in steps) - start_ms or 1
        factor = total_ms / natural
        for s in steps:
            s.start_ms = start_ms + int((s.start_ms - start_ms) * factor)
            s.end_ms = max(s.start_ms + 1, start_ms + int((s.end_ms - start_ms) * factor))
    for order, s in enumerate(steps, start=1):
        s.order = order
    end_ms = max(s.end_ms for s in steps) + rng.randint(20, 90)
    return steps, end_ms


def _pick_stop(steps: list[Step], final: str, rng: random.Random) -> int:
    weights = {
        FAILED: {"action": 6, "resource": 3, "notification": 1, "qualysevent": 1},
        TIMED_OUT: {"wait": 20, "action": 2, "resource": 1},
        CANCELLED: {"wait": 4, "action": 2, "resource": 2, "filter": 1, "notification": 1},
    }[final]
    candidates = [(i, weights.get(s.node_type, 0)) for i, s in enumerate(steps) if i > 0]
    candidates = [(i, w) for i, w in candidates if w] or [(len(steps) - 1, 1)]
    return rng.choices([i for i, _ in candidates], weights=[w for _, w in candidates])[0]


def _timeout_error(component: dict[str, Any]) -> str:
    inputs = component["inputs"]
    if component["type"] == "wait" and "waiter" in inputs:
        return (
            f"Waiter {inputs['waiter'][0].upper()}{inputs['waiter'][1:]} failed: Max attempts "
            f"exceeded ({inputs.get('maxAttempts', 40)} attempts, {inputs.get('delay', 15)} s "
            "delay)"
        )
    return f"Step timed out after {_timeout_ms(component) // SECOND_MS} seconds"


_AWS_PREFIX = {
    "EC2": "ec2",
    "S3": "s3",
    "IAM": "iam",
    "RDS": "rds",
    "ResourceGroupsTaggingAPI": "tag",
    "CloudTrail": "cloudtrail",
}


def _hexid(rng: random.Random, n: int = 17) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def failure_text(
    wf: Workflow, component: dict[str, Any], rng: random.Random, ctx: dict[str, str]
) -> str:
    """A realistic error message for a failing step of this workflow."""
    kind = component["type"]
    inputs = component["inputs"]
    if kind == "notification":
        if inputs.get("channel") == "slack":
            return "SlackApiError: The request to the Slack API failed. error: channel_not_found"
        return (
            "SMTPRecipientsRefused: 550 5.1.1 <cloud-owners@example.com>: Recipient address "
            "rejected: User unknown in virtual mailbox table"
        )
    if kind == "qualysevent":
        return (
            f"Failed to start workflow {inputs.get('workflowId')}: QFlow is undeployed and "
            "forceRun is false"
        )
    method = str(inputs.get("method", "call"))
    api = method.split(".")[-1]
    api = api[0].upper() + api[1:]
    cloud = wf.spec.cloud
    account = ctx["account"]
    if cloud == AWS:
        prefix = _AWS_PREFIX.get(str(inputs.get("service")), "ec2")
        region = ctx.get("region", "us-east-1")
        choices = [
            f"AccessDenied: User: arn:aws:sts::{account}:assumed-role/QFLOW_1/qflow-"
            f"{_hexid(rng, 8)} is not authorized to perform: {prefix}:{api} on resource: "
            f"arn:aws:{prefix}:{region}:{account}:* because no identity-based policy allows the "
            f"{prefix}:{api} action",
            "ThrottlingException: Rate exceeded",
            "ExpiredToken: The security token included in the request is expired",
        ]
        if kind == "resource":
            choices.append("RequestLimitExceeded: Request limit exceeded.")
        if method == "stopInstances":
            choices.append(
                f"IncorrectInstanceState: The instance 'i-0{_hexid(rng, 16)}' is not in a state "
                "from which it can be stopped."
            )
        if method == "deleteSecurityGroup":
            choices.append(
                f"DependencyViolation: resource sg-0{_hexid(rng, 16)} has a dependent object"
            )
        if method == "createAccessKey":
            choices.append("LimitExceeded: Cannot exceed quota for AccessKeysPerUser: 2")
        # Missing IAM permissions are by far the most common failure in practice.
        return rng.choices(choices, weights=[4] + [1] * (len(choices) - 1))[0]
    if cloud == AZURE:
        rg = ctx.get("resourceGroup", "DefaultResourceGroup-CIN")
        return rng.choice(
            [
                f"AuthorizationFailed: The client '{new_uuid(rng)}' with object id "
                f"'{new_uuid(rng)}' does not have authorization to perform action "
                "'Microsoft.Network/networkSecurityGroups/securityRules/write' over scope "
                f"'/subscriptions/{account}/resourceGroups/{rg}/providers/Microsoft.Network/"
                f"networkSecurityGroups/nsg-{_hexid(rng, 6)}' or the scope is invalid. If access "
                "was recently granted, please refresh your credentials.",
                "Authorization_RequestDenied: Insufficient privileges to complete the operation.",
                "TooManyRequests: The request is being throttled as the limit has been reached "
                "for operation type - Write_ObservationWindow_00:05:00",
            ]
        )
    if cloud == GCP:
        project = ctx.get("project", "gcp-qualys-demo")
        return rng.choice(
            [
                f"403 Forbidden: qflow-connector@{project}.iam.gserviceaccount.com does not have "
                f"storage.buckets.update access to the Google Cloud Storage bucket. Permission "
                "'storage.buckets.update' denied on resource (or it may not exist).",
                f"PERMISSION_DENIED: Permission 'iam.serviceAccountKeys.delete' denied on "
                f"resource 'projects/{project}/serviceAccounts/-' (or it may not exist).",
                "429 RESOURCE_EXHAUSTED: Quota exceeded for quota metric 'Read requests' and "
                "limit 'Read requests per minute'",
            ]
        )
    return rng.choice(
        [
            "NotAuthorizedOrNotFound: Authorization failed or requested resource not found. "
            f"(opc-request-id: {_hexid(rng, 32).upper()})",
            "TooManyRequests: User-rate limit exceeded.",
            "IncorrectState: The bucket is in a state that does not allow this operation.",
        ]
    )


# --- building -----------------------------------------------------------------------------

_SYSTEM_VARIABLES = (
    "region",
    "resourceGroup",
    "project",
    "oci_region",
    "compartment",
    "credentials",
    "credentials_azure",
    "credentials_gcp",
)
_FINALS = ((SUCCESS, 86), (FAILED, 8), (CANCELLED, 3), (TIMED_OUT, 3))
_AWS_REGIONS = ("eu-west-1", "ap-south-1", "us-west-2")


def _connectors(rng: random.Random) -> list[Connector]:
    def aws() -> str:
        return str(rng.randint(100_000_000_000, 999_999_999_999))

    made = [
        (AWS, aws(), "aws-prod"),
        (AWS, aws(), "aws-security"),
        (AWS, aws(), "aws-dev"),
        (AZURE, "", "azure-prod-subscription"),
        (AZURE, "", "azure-sandbox"),
        (GCP, "gcp-qualys-demo", "gcp-qualys-demo"),
        (GCP, "gcp-prod-data-7731", "gcp-prod-data"),
        (OCI, "", "oci-tenancy"),
    ]
    out = []
    for cloud, account, name in made:
        if cloud == AZURE:
            account = new_uuid(rng)
        if cloud == OCI:
            account = f"ocid1.tenancy.oc1..aaaaaaaa{_b32(rng, 52)}"
        out.append(Connector(new_uuid(rng), cloud, account, name, new_uuid(rng)))
    return out


def _b32(rng: random.Random, n: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    return "".join(alphabet[rng.getrandbits(5)] for _ in range(n))


def _defaults(cloud: str, rng: random.Random) -> dict[str, str]:
    if cloud == AWS:
        return {"region": "us-east-1"}
    if cloud == AZURE:
        return {"resourceGroup": "DefaultResourceGroup-CIN"}
    if cloud == GCP:
        return {"project": "gcp-qualys-demo"}
    return {
        "oci_region": "ap-hyderabad-1",
        "compartment": f"ocid1.compartment.oc1..aaaaaaaa{_b32(rng, 52)}",
    }


def _variables(spec: Spec, connector: Connector, defaults: dict[str, str]) -> list[dict]:
    cloud = spec.cloud
    values: dict[str, list[Any]] = {
        "region": [defaults["region"]] if cloud == AWS else [],
        "resourceGroup": [defaults["resourceGroup"]] if cloud == AZURE else [],
        "project": [defaults["project"]] if cloud == GCP else [],
        "credentials": [f"@{connector.id}"] if cloud in (AWS, OCI) else [],
        "credentials_azure": [f"@{connector.id}"] if cloud == AZURE else [],
        "credentials_gcp": [f"@{connector.id}"] if cloud == GCP else [],
    }
    if cloud == OCI:
        values["oci_region"] = [defaults["oci_region"]]
        values["compartment"] = [defaults["compartment"]]
    values.update(spec.custom)
    return [{"key": k, "value": v} for k, v in values.items()]


def variable_strings(settings: dict[str, str], extra: dict[str, Any] | None = None) -> list[str]:
    items = dict(settings)
    items.update(extra or {})
    return [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in items.items()]


def make_workflows(
    rng: random.Random, anchor_ms: int, users: list[str], connectors: list[Connector]
) -> list[Workflow]:
    ids = {spec.key: new_uuid(rng) for spec in SPECS}
    workflows = []
    for spec in SPECS:
        connector = next(c for c in connectors if c.cloud == spec.cloud)
        defaults = _defaults(spec.cloud, rng)
        components = build_components(spec, rng, ids.get(spec.child) if spec.child else None)
        definition = json.dumps(
            {"variables": _variables(spec, connector, defaults), "components": components},
            separators=(",", ":"),
        )
        created = anchor_ms - rng.randint(90, 420) * DAY_MS - rng.randint(0, DAY_MS)
        updated = anchor_ms - rng.randint(61, 89) * DAY_MS - rng.randint(0, DAY_MS)
        workflows.append(
            Workflow(
                id=ids[spec.key],
                spec=spec,
                created_ms=created,
                updated_ms=max(updated, created + HOUR_MS),
                created_by=rng.choice(users),
                connector=connector,
                defaults=defaults,
                variables=_variables(spec, connector, defaults),
                components=components,
                definition=definition,
                revision=hashlib.sha256(definition.encode()).hexdigest(),
                nodes={c["id"]: c for c in components},
            )
        )
    return workflows


def context_for(ex_settings: dict[str, str], connector: Connector) -> dict[str, str]:
    return {**ex_settings, "account": connector.account}


def build(seed: int, anchor_ms: int) -> Dataset:
    """Build the whole demo data set (payloads excluded) for `seed`, placed before `anchor_ms`."""
    rng = random.Random(seed)
    customer_id = new_uuid(rng)
    api_user_id = new_uuid(rng)
    users = [new_uuid(rng) for _ in range(5)]
    connectors = _connectors(rng)
    workflows = make_workflows(rng, anchor_ms, users, connectors)
    latest = anchor_ms - 2 * MINUTE_MS
    earliest = anchor_ms - RETENTION_DAYS * DAY_MS + HOUR_MS
    midnight = anchor_ms // DAY_MS * DAY_MS
    executions: list[Execution] = []

    def execution(
        wf: Workflow,
        start: int,
        source: str,
        user: str,
        final: str,
        *,
        total_ms: int | None = None,
        wait_ms: int | None = None,
        force_branch: str | None = None,
    ) -> Execution:
        r = rng
        connector, settings = wf.connector, dict(wf.defaults)
        if source in ("UI", "PUBLIC_API") and r.random() < 0.3:
            others = [c for c in connectors if c.cloud == wf.cloud]
            connector = r.choice(others)
            if wf.cloud == AWS:
                settings["region"] = r.choice(_AWS_REGIONS)
        extra = {"connectorId": connector.id} if source == "PUBLIC_API" else None
        steps, end = plan_steps(
            wf,
            r,
            start,
            final,
            context=context_for(settings, connector),
            total_ms=total_ms,
            wait_ms=wait_ms,
            force_branch=force_branch,
        )
        overrides = [
            {"key": k, "value": v, "type": "system-defined"} for k, v in (extra or {}).items()
        ]
        ex = Execution(
            id=new_uuid(r),
            workflow_id=wf.id,
            cloud=wf.cloud,
            source=source,
            created_by=user,
            start_ms=start,
            end_ms=end,
            status=final,
            steps=steps,
            connector=connector,
            settings=settings,
            variable_strings=variable_strings(settings, extra),
            overrides=overrides,
        )
        executions.append(ex)
        return ex

    finals, final_weights = zip(*_FINALS, strict=True)
    for wf in workflows:
        spec = wf.spec
        sources, source_weights = zip(*spec.sources, strict=True)
        for _ in range(spec.weight):
            source = rng.choices(sources, weights=source_weights)[0]
            if source == "SCHEDULE" and spec.schedule_hour is not None:
                start = (
                    midnight
                    - rng.randrange(RETENTION_DAYS) * DAY_MS
                    + spec.schedule_hour * HOUR_MS
                    + rng.randint(0, 45_000)
                )
                if start > latest:
                    start -= DAY_MS
                start = max(start, earliest)
            else:
                start = rng.randint(earliest, latest)
            user = wf.created_by if source in ("SCHEDULE", "EVENT") else rng.choice(users)
            if source == "PUBLIC_API":
                user = api_user_id
            final = rng.choices(finals, weights=final_weights)[0]
            execution(wf, start, source, user, final)

    # The few most recent ones are still running when the data set is built...
    for key, final in (
        ("ec2_public", SUCCESS),
        ("s3_public", SUCCESS),
        ("azure_rdp", FAILED),
        ("gcs_public", SUCCESS),
    ):
        wf = next(w for w in workflows if w.spec.key == key)
        start = anchor_ms - rng.randint(15, 150) * SECOND_MS
        execution(
            wf,
            start,
            rng.choice(("UI", "EVENT")),
            rng.choice(users),
            final,
            total_ms=rng.randint(3, 8) * MINUTE_MS,
        )
    # ...and a couple wait for hours.
    for key in ("rds_public", "gcp_sa_keys"):
        wf = next(w for w in workflows if w.spec.key == key)
        start = anchor_ms - rng.randint(30, 80) * MINUTE_MS
        execution(
            wf,
            start,
            "SCHEDULE",
            wf.created_by,
            SUCCESS,
            wait_ms=rng.randint(3, 5) * HOUR_MS,
            force_branch="true",
        )

    # qualysevent steps start a child execution of the verification workflow.
    linked: list[tuple[str, str, str]] = []
    verify = next(w for w in workflows if w.spec.key == "ec2_verify")
    for parent in [e for e in executions if e.steps and e.end_ms < anchor_ms]:
        event = next((s for s in parent.steps if s.node_type == "qualysevent"), None)
        if event is None or event.status != SUCCESS:
            continue
        start = event.end_ms + rng.randint(150, 900)
        final = rng.choices(finals, weights=final_weights)[0]
        child = execution(verify, start, "WORKFLOW_TRIGGER", parent.created_by, final)
        child.connector, child.settings = parent.connector, dict(parent.settings)
        child.variable_strings = variable_strings(child.settings)
        child.parent_id = parent.id
        parent.linked_ids.append(child.id)
        linked.append((parent.id, event.node_id, child.id))

    executions.sort(key=lambda e: (e.start_ms, e.id), reverse=True)
    workflow_keys = {w.id: w.spec.key for w in workflows}

    big: list[tuple[str, str, int]] = []
    candidates = [
        e
        for e in executions
        if workflow_keys[e.workflow_id] == "tag_untagged"
        and e.status == SUCCESS
        and e.end_ms < anchor_ms - MINUTE_MS
        and e.start_ms > anchor_ms - 25 * DAY_MS
    ]
    sizes = (3_400_000, 5_700_000, 8_300_000, 10_600_000)
    spacing = max(1, len(candidates) // len(sizes))
    for ex, size in zip(candidates[::spacing], sizes, strict=False):
        fetch = next(s for s in ex.steps if s.node_type == "resource")
        ex.big[fetch.node_id] = size + rng.randint(0, 400_000)
        big.append((ex.id, fetch.node_id, ex.big[fetch.node_id]))

    # Every successful createAccessKey step returns a SecretAccessKey (the dashboard masks it).
    nodes = {w.id: w.nodes for w in workflows}
    leaks = [
        (ex.id, s.node_id)
        for ex in executions
        for s in ex.steps
        if s.status == SUCCESS
        and nodes[ex.workflow_id][s.node_id]["inputs"].get("method") == "createAccessKey"
    ]

    ds = Dataset(
        seed=seed,
        anchor_ms=anchor_ms,
        customer_id=customer_id,
        api_user_id=api_user_id,
        users=users,
        connectors=connectors,
        workflows=workflows,
        executions=executions,
        big_payloads=big,
        linked=linked,
        leaks=leaks,
    )
    ds._workflows = {w.id: w for w in workflows}
    ds._executions = {e.id: e for e in executions}
    ds.by_workflow = {w.id: [] for w in workflows}
    for ex in executions:
        ds.by_workflow[ex.workflow_id].append(ex)
    return ds


def make_run(
    ds: Dataset,
    wf: Workflow,
    *,
    execution_id: str,
    now_ms: int,
    run_input: dict[str, Any],
    variables: dict[str, Any],
    duration_ms: int,
    final: str,
) -> Execution:
    """An execution started by POST /run: Running now, finished after `duration_ms`."""
    rng = random.Random(execution_id)
    settings = dict(wf.defaults)
    for key in settings:
        if isinstance(variables.get(key), str):
            settings[key] = variables[key]
    connector = wf.connector
    connector_id = variables.get("connectorId")
    if isinstance(connector_id, str):
        connector = ds.connector(connector_id) or Connector(
            connector_id, wf.cloud, wf.connector.account, "connector", connector_id
        )
    steps, end = plan_steps(
        wf, rng, now_ms, final, context=context_for(settings, connector), total_ms=duration_ms
    )
    system = {*_SYSTEM_VARIABLES, "connectorId"}
    overrides = [
        {"key": k, "value": v, "type": "system-defined" if k in system else "user-defined"}
        for k, v in variables.items()
    ]
    return Execution(
        id=execution_id,
        workflow_id=wf.id,
        cloud=wf.cloud,
        source="PUBLIC_API",
        created_by=ds.api_user_id,
        start_ms=now_ms,
        end_ms=end,
        status=final,
        steps=steps,
        connector=connector,
        settings=settings,
        variable_strings=variable_strings({}, variables),
        overrides=overrides,
        input=run_input,
    )


# --- the fleet: a large tenant for measuring the sync -------------------------------------

FLEET_RUN_SECONDS = (20, 180)  # how long a fleet execution runs


def build_fleet(
    seed: int,
    anchor_ms: int,
    *,
    workflows: int,
    active: int,
    active_minutes: float,
    rare_per_month: float,
    days: float,
) -> Dataset:
    """A tenant of `workflows` workflows: the first `active` run every `active_minutes` on
    average, the others `rare_per_month` times in 30 days; both as Poisson processes (runs at
    random moments, as events and people start them), over [anchor - days, anchor + days].

    Executions after "now" exist in the data set but the API does not list them until their
    createdAt has passed: the fleet keeps producing new executions for `days` days.
    """
    import dataclasses

    rng = random.Random(seed * 7919 + workflows)
    customer_id = new_uuid(rng)
    api_user_id = new_uuid(rng)
    users = [new_uuid(rng) for _ in range(5)]
    connectors = _connectors(rng)
    specs = [s for s in SPECS if not s.child and s.shape != "verify"]
    made: list[Workflow] = []
    for index in range(workflows):
        base = specs[index % len(specs)]
        kind = "active" if index < active else "rare"
        spec = dataclasses.replace(
            base, key=f"{base.key}-{index}", name=f"{base.name} ({kind} #{index + 1})", child=None
        )
        connector = next(c for c in connectors if c.cloud == spec.cloud)
        defaults = _defaults(spec.cloud, rng)
        components = build_components(spec, rng, None)
        variables = _variables(spec, connector, defaults)
        definition = json.dumps(
            {"variables": variables, "components": components}, separators=(",", ":")
        )
        created = anchor_ms - rng.randint(90, 420) * DAY_MS
        made.append(
            Workflow(
                id=new_uuid(rng),
                spec=spec,
                created_ms=created,
                updated_ms=created + HOUR_MS,
                created_by=rng.choice(users),
                connector=connector,
                defaults=defaults,
                variables=variables,
                components=components,
                definition=definition,
                revision=hashlib.sha256(definition.encode()).hexdigest(),
                nodes={c["id"]: c for c in components},
            )
        )
    first, last = anchor_ms - int(days * DAY_MS), anchor_ms + int(days * DAY_MS)
    finals, final_weights = zip(*_FINALS, strict=True)
    executions: list[Execution] = []
    for index, wf in enumerate(made):
        mean_ms = (
            active_minutes * MINUTE_MS
            if index < active
            else (30 * DAY_MS / rare_per_month if rare_per_month else None)
        )
        if mean_ms is None:
            continue
        at = first
        while True:
            at += max(1, int(rng.expovariate(1 / mean_ms)))
            if at > last:
                break
            final = rng.choices(finals, weights=final_weights)[0]
            duration = rng.randint(*FLEET_RUN_SECONDS) * SECOND_MS
            steps, end = plan_steps(
                wf, rng, at, final, context=context_for(wf.defaults, wf.connector),
                total_ms=duration,
            )  # fmt: skip
            source = "SCHEDULE" if index % 2 else "EVENT"
            executions.append(
                Execution(
                    id=new_uuid(rng),
                    workflow_id=wf.id,
                    cloud=wf.cloud,
                    source=source,
                    created_by=wf.created_by,
                    start_ms=at,
                    end_ms=end,
                    status=final,
                    steps=steps,
                    connector=wf.connector,
                    settings=dict(wf.defaults),
                    variable_strings=variable_strings(wf.defaults),
                )
            )
    executions.sort(key=lambda e: (e.start_ms, e.id), reverse=True)
    ds = Dataset(
        seed=seed,
        anchor_ms=anchor_ms,
        customer_id=customer_id,
        api_user_id=api_user_id,
        users=users,
        connectors=connectors,
        workflows=made,
        executions=executions,
        big_payloads=[],
        linked=[],
        leaks=[],
    )
    ds._workflows = {w.id: w for w in made}
    ds._executions = {e.id: e for e in executions}
    ds.by_workflow = {w.id: [] for w in made}
    for ex in executions:
        ds.by_workflow[ex.workflow_id].append(ex)
    return ds
