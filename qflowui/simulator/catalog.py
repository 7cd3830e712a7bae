"""The demo workflows: what each one does, on which cloud, and the shape of its graph.

`build_components` turns a spec into QFlow `components` (trigger, resource, filter, action,
wait, qualysevent, notification) with ids like `node-1a2b3c4d-filter`. Specs are plain data so a
reader can see at a glance what the demo tenant contains.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

AWS, AZURE, GCP, OCI = "AWS", "AZURE", "GCP", "OCI"

SOLUTIONS = {
    AWS: "AWS Best Practices",
    AZURE: "Azure Best Practices",
    GCP: "GCP Best Practices",
    OCI: "OCI Best Practices",
}

# Variable names holding each cloud's connector, as in the workflow definitions.
CREDENTIAL_VARIABLE = {AWS: "credentials", AZURE: "credentials_azure", GCP: "credentials_gcp"}


@dataclass(frozen=True)
class Op:
    """One cloud API call made by a resource or action node."""

    service: str
    method: str
    resource_type: str
    label: str


@dataclass(frozen=True)
class Spec:
    key: str
    name: str
    description: str
    category: str
    cloud: str
    kind: str  # payload family, see payloads.py
    weight: int  # executions over 60 days (before children)
    sources: tuple[tuple[str, int], ...]
    shape: str = "standard"  # standard, fetch_join, minimal, sweep, verify
    fetch: Op | None = None
    extra_fetch: Op | None = None
    filter_label: str = ""
    conditions: tuple[dict[str, Any], ...] = ()
    actions: tuple[Op, ...] = ()
    wait_seconds: int | None = None
    verify: Op | None = None
    child: str | None = None  # key of the workflow a qualysevent node starts
    fanout: bool = False  # parallel notifications after the last action
    find_rate: float = 0.75  # how often the filter finds something
    deployed: bool = True
    schedule_hour: int | None = None
    custom: dict[str, list[Any]] = field(default_factory=dict)


def _src(**weights: int) -> tuple[tuple[str, int], ...]:
    return tuple(weights.items())


SPECS: tuple[Spec, ...] = (
    Spec(
        key="ec2_public",
        name="Stop publicly exposed EC2 instances",
        description="Stops EC2 instances that have a public IP and a security group open to "
        "0.0.0.0/0, then starts the verification QFlow for the stopped instances.",
        category="Remediation",
        cloud=AWS,
        kind="ec2",
        weight=220,
        sources=_src(EVENT=50, SCHEDULE=30, UI=15, PUBLIC_API=5),
        fetch=Op("EC2", "describeInstances", "EC2_INSTANCE", "Describe EC2 instances"),
        filter_label="Public IP and open security group?",
        conditions=(
            {"id": 1, "path": "PublicIpAddress", "operator": "exists", "value": ""},
            {
                "id": 2,
                "path": "SecurityGroups[].IpRanges",
                "operator": "contains",
                "value": "0.0.0.0/0",
            },
        ),
        actions=(Op("EC2", "stopInstances", "EC2_INSTANCE", "Stop instances"),),
        child="ec2_verify",
        schedule_hour=2,
        custom={"depthCount": [2]},
    ),
    Spec(
        key="ec2_verify",
        name="Verify stopped EC2 instances and notify owners",
        description="Started by 'Stop publicly exposed EC2 instances': waits for the instances "
        "to reach 'stopped', stops stragglers again and emails the owners.",
        category="Remediation",
        cloud=AWS,
        kind="ec2_verify",
        weight=12,
        sources=_src(UI=1),
        shape="verify",
        fetch=Op("EC2", "describeInstances", "EC2_INSTANCE", "Describe stopped instances"),
        filter_label="All instances stopped?",
        conditions=({"id": 1, "path": "State.Name", "operator": "equals", "value": "stopped"},),
        actions=(Op("EC2", "stopInstances", "EC2_INSTANCE", "Stop stragglers"),),
        wait_seconds=600,
        find_rate=0.85,
        custom={"notifyEmail": ["cloud-owners@example.com"]},
    ),
    Spec(
        key="s3_public",
        name="Fix public S3 buckets",
        description="Blocks public access on S3 buckets whose ACL or policy makes them public.",
        category="Remediation",
        cloud=AWS,
        kind="s3",
        weight=200,
        sources=_src(SCHEDULE=45, EVENT=35, UI=15, PUBLIC_API=5),
        fetch=Op("S3", "listBuckets", "S3_BUCKET", "List S3 buckets"),
        filter_label="Bucket is public?",
        conditions=(
            {"id": 1, "path": "PolicyStatus.IsPublic", "operator": "equals", "value": True},
        ),
        actions=(Op("S3", "putPublicAccessBlock", "S3_BUCKET", "Block public access"),),
        schedule_hour=3,
    ),
    Spec(
        key="iam_rotate",
        name="Rotate IAM access keys older than 90 days",
        description="Creates a new access key for IAM users whose active key is older than "
        "maxKeyAgeDays and deactivates the old one.",
        category="Identity",
        cloud=AWS,
        kind="iamkeys",
        weight=90,
        sources=_src(SCHEDULE=70, UI=20, PUBLIC_API=10),
        fetch=Op("IAM", "listAccessKeys", "IAM_ACCESS_KEY", "List IAM access keys"),
        filter_label="Key older than maxKeyAgeDays?",
        conditions=(
            {
                "id": 1,
                "path": "AgeDays",
                "operator": "greaterThan",
                "value": "$wf.variables: maxKeyAgeDays",
            },
        ),
        actions=(
            Op("IAM", "createAccessKey", "IAM_ACCESS_KEY", "Create new access key"),
            Op("IAM", "updateAccessKey", "IAM_ACCESS_KEY", "Deactivate old access key"),
        ),
        schedule_hour=4,
        custom={"maxKeyAgeDays": [90], "notifyEmail": ["iam-admins@example.com"]},
    ),
    Spec(
        key="tag_untagged",
        name="Tag untagged resources",
        description="Scans the whole AWS inventory for resources without owner/cost-center "
        "tags, applies default tags and notifies Slack and the owners in parallel.",
        category="Governance",
        cloud=AWS,
        kind="inventory",
        weight=120,
        sources=_src(SCHEDULE=80, UI=20),
        fetch=Op("ResourceGroupsTaggingAPI", "getResources", "ALL", "Fetch full inventory"),
        filter_label="Missing required tags?",
        conditions=(
            {
                "id": 1,
                "path": "Tags[].Key",
                "operator": "notContains",
                "value": "$wf.variables: requiredTags",
            },
        ),
        actions=(Op("ResourceGroupsTaggingAPI", "tagResources", "ALL", "Apply default tags"),),
        fanout=True,
        find_rate=0.9,
        schedule_hour=1,
        custom={"requiredTags": ["owner", "cost-center"], "defaultOwner": ["secops@example.com"]},
    ),
    Spec(
        key="sg_unused",
        name="Remove unused security groups",
        description="Deletes security groups that no network interface uses; security groups "
        "and interfaces are fetched in parallel.",
        category="Hygiene",
        cloud=AWS,
        kind="sg",
        weight=100,
        sources=_src(SCHEDULE=75, UI=25),
        shape="fetch_join",
        fetch=Op("EC2", "describeSecurityGroups", "EC2_SECURITY_GROUP", "Describe security groups"),
        extra_fetch=Op(
            "EC2",
            "describeNetworkInterfaces",
            "EC2_NETWORK_INTERFACE",
            "Describe network interfaces",
        ),
        filter_label="Not attached to any interface?",
        conditions=({"id": 1, "path": "AttachedEniCount", "operator": "equals", "value": 0},),
        actions=(Op("EC2", "deleteSecurityGroup", "EC2_SECURITY_GROUP", "Delete security groups"),),
        deployed=False,
        schedule_hour=5,
        custom={"dryRun": [False]},
    ),
    Spec(
        key="s3_encrypt",
        name="Enable S3 default encryption",
        description="Turns on SSE-KMS default encryption for buckets without it.",
        category="Compliance",
        cloud=AWS,
        kind="s3enc",
        weight=150,
        sources=_src(EVENT=60, SCHEDULE=25, UI=15),
        fetch=Op("S3", "listBuckets", "S3_BUCKET", "List S3 buckets"),
        filter_label="No default encryption?",
        conditions=(
            {
                "id": 1,
                "path": "ServerSideEncryptionConfiguration",
                "operator": "isEmpty",
                "value": "",
            },
        ),
        actions=(Op("S3", "putBucketEncryption", "S3_BUCKET", "Enable SSE-KMS"),),
        schedule_hour=3,
        custom={"kmsKeyAlias": ["alias/s3-default"]},
    ),
    Spec(
        key="rds_public",
        name="Publicly accessible RDS DB Instances",
        description="Makes RDS DB instances that are publicly accessible private.",
        category="Remediation",
        cloud=AWS,
        kind="rds",
        weight=120,
        sources=_src(EVENT=40, SCHEDULE=40, UI=20),
        fetch=Op("RDS", "describeDBInstances", "RDS_DB_INSTANCE", "Describe DB instances"),
        filter_label="Publicly accessible?",
        conditions=({"id": 1, "path": "PubliclyAccessible", "operator": "equals", "value": True},),
        actions=(Op("RDS", "modifyDBInstance", "RDS_DB_INSTANCE", "Disable public access"),),
        wait_seconds=120,
        verify=Op("RDS", "describeDBInstances", "RDS_DB_INSTANCE", "Confirm DB is private"),
        schedule_hour=6,
    ),
    Spec(
        key="ec2_sweep",
        name="Multi-region EC2 exposure sweep",
        description="Walks nine AWS regions one after the other, stopping publicly exposed "
        "instances and waiting for them to stop before the next region.",
        category="Remediation",
        cloud=AWS,
        kind="ec2",
        weight=60,
        sources=_src(SCHEDULE=85, UI=15),
        shape="sweep",
        fetch=Op("EC2", "describeInstances", "EC2_INSTANCE", "Describe instances"),
        filter_label="Exposed instances?",
        conditions=({"id": 1, "path": "PublicIpAddress", "operator": "exists", "value": ""},),
        actions=(Op("EC2", "stopInstances", "EC2_INSTANCE", "Stop exposed instances"),),
        wait_seconds=180,
        find_rate=0.3,
        schedule_hour=0,
    ),
    Spec(
        key="root_audit",
        name="Report AWS root account usage",
        description="Looks up CloudTrail for root account sign-ins and API calls and mails "
        "the daily report.",
        category="Reporting",
        cloud=AWS,
        kind="cloudtrail",
        weight=240,
        sources=_src(SCHEDULE=90, UI=10),
        shape="minimal",
        fetch=Op("CloudTrail", "lookupEvents", "CLOUDTRAIL_EVENT", "Look up root events"),
        schedule_hour=7,
        custom={"notifyEmail": ["secops@example.com"]},
    ),
    Spec(
        key="azure_rdp",
        name="Restrict open RDP in Azure NSGs",
        description="Denies inbound 3389 from the internet in network security groups.",
        category="Remediation",
        cloud=AZURE,
        kind="nsg",
        weight=180,
        sources=_src(EVENT=45, SCHEDULE=35, UI=15, PUBLIC_API=5),
        fetch=Op("Network", "listNetworkSecurityGroups", "AZURE_NSG", "List NSGs"),
        filter_label="Allows RDP from Internet?",
        conditions=(
            {
                "id": 1,
                "path": "properties.securityRules[].destinationPortRange",
                "operator": "contains",
                "value": "3389",
            },
            {
                "id": 2,
                "path": "properties.securityRules[].sourceAddressPrefix",
                "operator": "in",
                "value": ["*", "Internet", "0.0.0.0/0"],
            },
        ),
        actions=(Op("Network", "securityRules.createOrUpdate", "AZURE_NSG", "Set rule to Deny"),),
        wait_seconds=60,
        verify=Op("Network", "getNetworkSecurityGroup", "AZURE_NSG", "Re-read NSG"),
        schedule_hour=2,
    ),
    Spec(
        key="azure_sp",
        name="Revoke stale Azure SP secrets",
        description="Removes service principal client secrets that expired or are older "
        "than a year.",
        category="Identity",
        cloud=AZURE,
        kind="azsp",
        weight=70,
        sources=_src(SCHEDULE=75, UI=25),
        fetch=Op("Graph", "listApplications", "AZURE_APPLICATION", "List app registrations"),
        filter_label="Stale client secret?",
        conditions=(
            {
                "id": 1,
                "path": "passwordCredentials[].endDateTime",
                "operator": "before",
                "value": "now",
            },
        ),
        actions=(Op("Graph", "removePassword", "AZURE_APPLICATION", "Remove client secret"),),
        deployed=False,
        schedule_hour=4,
        custom={"maxSecretAgeDays": [365]},
    ),
    Spec(
        key="gcs_public",
        name="Disable public GCS buckets",
        description="Enforces public access prevention on buckets granting allUsers or "
        "allAuthenticatedUsers.",
        category="Remediation",
        cloud=GCP,
        kind="gcs",
        weight=160,
        sources=_src(EVENT=40, SCHEDULE=40, UI=15, PUBLIC_API=5),
        fetch=Op("Storage", "buckets.list", "GCP_BUCKET", "List buckets"),
        filter_label="Public IAM binding?",
        conditions=(
            {
                "id": 1,
                "path": "iamBindings[].members",
                "operator": "containsAny",
                "value": ["allUsers", "allAuthenticatedUsers"],
            },
        ),
        actions=(Op("Storage", "buckets.patch", "GCP_BUCKET", "Enforce public access prevention"),),
        schedule_hour=3,
    ),
    Spec(
        key="gcp_sa_keys",
        name="Delete unused GCP service account keys",
        description="Deletes user-managed service account keys unused for 90 days.",
        category="Identity",
        cloud=GCP,
        kind="gcpkeys",
        weight=90,
        sources=_src(SCHEDULE=80, UI=20),
        fetch=Op("IAM", "serviceAccounts.keys.list", "GCP_SA_KEY", "List service account keys"),
        filter_label="Unused for 90 days?",
        conditions=({"id": 1, "path": "lastUsed", "operator": "olderThanDays", "value": 90},),
        actions=(Op("IAM", "serviceAccounts.keys.delete", "GCP_SA_KEY", "Delete keys"),),
        wait_seconds=300,
        schedule_hour=5,
    ),
    Spec(
        key="oci_bucket",
        name="Enforce OCI bucket privacy",
        description="Sets publicAccessType to NoPublicAccess on public Object Storage buckets.",
        category="Remediation",
        cloud=OCI,
        kind="ocibucket",
        weight=130,
        sources=_src(SCHEDULE=55, EVENT=25, UI=15, PUBLIC_API=5),
        fetch=Op("ObjectStorage", "listBuckets", "OCI_BUCKET", "List buckets"),
        filter_label="Public bucket?",
        conditions=(
            {
                "id": 1,
                "path": "publicAccessType",
                "operator": "notEquals",
                "value": "NoPublicAccess",
            },
        ),
        actions=(Op("ObjectStorage", "updateBucket", "OCI_BUCKET", "Make bucket private"),),
        schedule_hour=2,
    ),
    Spec(
        key="oci_ssh",
        name="Close open SSH in OCI security lists",
        description="Removes ingress rules allowing TCP 22 from 0.0.0.0/0.",
        category="Remediation",
        cloud=OCI,
        kind="ocisl",
        weight=110,
        sources=_src(SCHEDULE=60, EVENT=25, UI=15),
        fetch=Op("VirtualNetwork", "listSecurityLists", "OCI_SECURITY_LIST", "List security lists"),
        filter_label="SSH open to the world?",
        conditions=(
            {
                "id": 1,
                "path": "ingressSecurityRules[].source",
                "operator": "equals",
                "value": "0.0.0.0/0",
            },
        ),
        actions=(
            Op("VirtualNetwork", "updateSecurityList", "OCI_SECURITY_LIST", "Remove open SSH rule"),
        ),
        wait_seconds=30,
        schedule_hour=6,
    ),
)

SWEEP_REGIONS = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1",
    "eu-central-1", "ap-south-1", "ap-southeast-1", "ap-northeast-1",
)  # fmt: skip


class _Graph:
    """Builds a components list, keeping `next` and `previous` in step."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.components: list[dict[str, Any]] = []

    def add(self, kind: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        node_id = "trigger" if kind == "trigger" else f"node-{self.rng.getrandbits(32):08x}-{kind}"
        component = {
            "name": name,
            "id": node_id,
            "type": kind,
            "next": None,
            "previous": None,
            "inputs": inputs,
        }
        self.components.append(component)
        return component

    def link(self, a: dict[str, Any], b: dict[str, Any], branch: str | None = None) -> None:
        if branch is not None:
            a["next"] = {**(a["next"] or {}), branch: b["id"]}
        else:
            a["next"] = _grow(a["next"], b["id"])
        b["previous"] = _grow(b["previous"], a["id"])

    def chain(self, *nodes: dict[str, Any]) -> None:
        for a, b in itertools.pairwise(nodes):
            self.link(a, b)


def _grow(current: Any, node_id: str) -> Any:
    if current is None:
        return node_id
    if isinstance(current, str):
        return [current, node_id]
    return [*current, node_id]


def _cloud_refs(cloud: str) -> dict[str, str]:
    if cloud == AZURE:
        return {
            "resourceGroup": "$wf.variables: resourceGroup",
            "credentials": "$wf.variables: credentials_azure",
        }
    if cloud == GCP:
        return {
            "project": "$wf.variables: project",
            "credentials": "$wf.variables: credentials_gcp",
        }
    if cloud == OCI:
        return {
            "region": "$wf.variables: oci_region",
            "compartment": "$wf.variables: compartment",
            "credentials": "$wf.variables: credentials",
        }
    return {"region": "$wf.variables: region", "credentials": "$wf.variables: credentials"}


def _op_inputs(cloud: str, op: Op, **extra: Any) -> dict[str, Any]:
    return {
        "cloudType": cloud,
        "service": op.service,
        "method": op.method,
        "resourceType": op.resource_type,
        **_cloud_refs(cloud),
        "params": {},
        "previousOutputPath": "collection",
        **extra,
    }


def _trigger_inputs(spec: Spec) -> dict[str, Any]:
    sources = dict(spec.sources)
    return {
        "event": {
            "active": "EVENT" in sources,
            "value": {
                "pattern": {"source": [f"aws.{spec.fetch.service.lower()}"]}
                if "EVENT" in sources and spec.cloud == AWS and spec.fetch
                else {},
                "cloudProvider": spec.cloud if "EVENT" in sources else "",
                "selectedServiceName": spec.fetch.service
                if "EVENT" in sources and spec.fetch
                else "",
                "selectedEventsName": "",
                "selectedFilters": [],
            },
        },
        "schedule": {
            "active": "SCHEDULE" in sources,
            "value": {
                "type": "CronTrigger",
                "cron": f"0 {spec.schedule_hour or 0} * * *",
                "timezone": "UTC",
            },
        },
        "manual": {"active": True},
    }


def _notification(g: _Graph, name: str, subject: str, channel: str = "email") -> dict[str, Any]:
    recipients = ["#cloud-governance"] if channel == "slack" else ["$wf.variables: notifyEmail"]
    return g.add(
        "notification",
        name,
        {
            "channel": channel,
            "recipients": recipients,
            "subject": subject,
            "template": "remediation-summary",
            "previousOutputPath": "collection",
        },
    )


def _filter(g: _Graph, spec: Spec, label: str | None = None) -> dict[str, Any]:
    expression = " AND ".join(str(c["id"]) for c in spec.conditions) or "1"
    return g.add(
        "filter",
        label or spec.filter_label,
        {
            "conditionalSettings": {"expression": expression, "conditions": list(spec.conditions)},
            "previousOutputPath": "collection",
        },
    )


def build_components(spec: Spec, rng: random.Random, child_workflow_id: str | None) -> list[dict]:
    g = _Graph(rng)
    trigger = g.add("trigger", "Trigger", _trigger_inputs(spec))
    cloud = spec.cloud
    assert spec.fetch is not None  # noqa: S101 - every spec fetches something

    if spec.shape == "minimal":
        fetch = g.add("resource", spec.fetch.label, _op_inputs(cloud, spec.fetch))
        g.chain(trigger, fetch, _notification(g, "Email root usage report", "Root account usage"))
        return g.components

    if spec.shape == "sweep":
        # Each region's "nothing found" branch and its wait both lead to the next region.
        entries: list[tuple[dict[str, Any], str | None]] = [(trigger, None)]
        for region in SWEEP_REGIONS:
            fetch = g.add(
                "resource",
                f"{spec.fetch.label} ({region})",
                _op_inputs(cloud, spec.fetch, region=region),
            )
            for node, branch in entries:
                g.link(node, fetch, branch)
            check = _filter(g, spec, f"{spec.filter_label} ({region})")
            g.link(fetch, check)
            stop = g.add(
                "action",
                f"{spec.actions[0].label} ({region})",
                _op_inputs(cloud, spec.actions[0], region=region),
            )
            g.link(check, stop, "true")
            wait = g.add(
                "wait",
                f"Wait for instances to stop ({region})",
                {
                    "waiter": "instanceStopped",
                    "delay": 15,
                    "maxAttempts": 40,
                    "timeoutSeconds": spec.wait_seconds,
                },
            )
            g.link(stop, wait)
            entries = [(check, "false"), (wait, None)]
        report = _notification(g, "Email sweep report", "EC2 exposure sweep")
        for node, branch in entries:
            g.link(node, report, branch)
        return g.components

    if spec.shape == "verify":
        wait = g.add(
            "wait",
            "Wait for instances to stop",
            {
                "waiter": "instanceStopped",
                "delay": 15,
                "maxAttempts": 40,
                "timeoutSeconds": spec.wait_seconds,
            },
        )
        fetch = g.add("resource", spec.fetch.label, _op_inputs(cloud, spec.fetch))
        check = _filter(g, spec)
        owners = _notification(g, "Email instance owners", "Your EC2 instances were stopped")
        restop = g.add("action", spec.actions[0].label, _op_inputs(cloud, spec.actions[0]))
        escalate = _notification(g, "Escalate to SecOps", "EC2 instances would not stop")
        g.chain(trigger, wait, fetch, check)
        g.link(check, owners, "true")
        g.link(check, restop, "false")
        g.link(restop, escalate)
        return g.components

    # standard and fetch_join: fetch -> filter -> actions [-> wait -> verify] [-> qualysevent]
    fetch = g.add("resource", spec.fetch.label, _op_inputs(cloud, spec.fetch))
    check = _filter(g, spec)
    if spec.shape == "fetch_join" and spec.extra_fetch:
        extra = g.add("resource", spec.extra_fetch.label, _op_inputs(cloud, spec.extra_fetch))
        g.link(trigger, fetch)
        g.link(trigger, extra)
        g.link(fetch, check)
        g.link(extra, check)
    else:
        g.chain(trigger, fetch, check)
    last = check
    for index, op in enumerate(spec.actions):
        action = g.add("action", op.label, _op_inputs(cloud, op))
        g.link(last, action, "true" if index == 0 else None)
        last = action
    if spec.wait_seconds:
        wait = g.add(
            "wait",
            "Wait for the change to apply",
            {
                "duration": min(spec.wait_seconds, 60),
                "unit": "seconds",
                "timeoutSeconds": spec.wait_seconds * 10,
            },
        )
        g.link(last, wait)
        last = wait
    if spec.verify:
        verify = g.add("resource", spec.verify.label, _op_inputs(cloud, spec.verify))
        g.link(last, verify)
        last = verify
    if spec.child and child_workflow_id:
        event = g.add(
            "qualysevent",
            "Start verification QFlow",
            {
                "method": "RunWorkflow",
                "workflowId": child_workflow_id,
                "waitForCompletion": False,
                "cloudType": "QUALYS",
                "service": "QFLOW",
                "resourceType": "Workflow",
                "selectedResource": {
                    "selectedResourceId": "workflow-trigger",
                    "label": "WorkflowTrigger",
                },
            },
        )
        g.link(last, event)
        last = event
    if spec.fanout:
        g.link(last, _notification(g, "Post to #cloud-governance", spec.name, channel="slack"))
        g.link(last, _notification(g, "Email resource owners", spec.name))
    else:
        g.link(last, _notification(g, "Email remediation report", spec.name))
    g.link(check, _notification(g, "Email: nothing to fix", f"{spec.name}: no findings"), "false")
    return g.components
