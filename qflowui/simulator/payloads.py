"""Step inputs and outputs, generated lazily and deterministically per (execution, node).

Shaped like the seed documents: resource nodes return `{"collection": [...], "stepMessage",
"success", "meta"}`, inputs carry masked credential blocks and `globalVariables`, a qualysevent
node returns a bare list of trigger envelopes. Multi-megabyte inventory outputs are written as
JSON text directly (no object tree) and kept in a small LRU cache.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from .catalog import AWS, OCI
from .config import CANCELLED, SUCCESS
from .dataset import DAY_MS, Dataset, Execution, Step, Workflow, new_uuid

MASK = "********************"
INPUT, OUTPUT = "input", "output"


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _upper(rng: random.Random, n: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return "".join(alphabet[rng.getrandbits(5)] for _ in range(n))


def _secret(rng: random.Random) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    return "".join(alphabet[rng.getrandbits(6)] for _ in range(40))


def _ip(rng: random.Random, public: bool) -> str:
    if public:
        return (
            f"{rng.choice((3, 18, 34, 52, 54))}.{rng.randint(0, 255)}.{rng.randint(0, 255)}"
            f".{rng.randint(1, 254)}"
        )
    return f"10.{rng.randint(0, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


_NAMES = ("web", "api", "batch", "etl", "bastion", "jenkins", "grafana", "kafka", "redis", "vpn")
_TEAMS = ("payments", "platform", "data", "identity", "growth", "secops")


# --- the resources an execution sees ---------------------------------------------------------


class World:
    """The cloud resources one execution fetched, and which ones the filter flagged."""

    def __init__(self, ds: Dataset, wf: Workflow, ex: Execution, region: str | None) -> None:
        self.ds, self.wf, self.ex = ds, wf, ex
        self.region = region or ex.settings.get("region") or ex.settings.get("oci_region") or ""
        self.account = ex.connector.account
        self.rng = random.Random(f"{ds.seed}:{ex.id}:{region}:world")
        self.findings = self._findings()
        self.items, self.flagged = getattr(self, f"_{wf.spec.kind}")()

    def _findings(self) -> bool:
        branches = [s.branch for s in self.ex.steps if s.node_type == "filter" and s.branch]
        if self.wf.spec.shape == "sweep":
            for s in self.ex.steps:
                comp = self.wf.nodes[s.node_id]
                if s.node_type == "filter" and self.region in comp["name"]:
                    return s.branch == "true"
            return False
        return (branches[0] == "true") if branches else True

    def _split(self, make, low: int = 3, high: int = 18) -> tuple[list[dict], list[dict]]:
        rng = self.rng
        count = rng.randint(low, high)
        flags = [rng.random() < 0.3 for _ in range(count)]
        if self.findings and not any(flags):
            flags[rng.randrange(count)] = True
        if not self.findings:
            flags = [False] * count
        items = [make(flag) for flag in flags]
        return items, [i for i, f in zip(items, flags, strict=True) if f]

    def _launch(self) -> str:
        return iso(self.ex.start_ms - self.rng.randint(2, 700) * DAY_MS)

    def _ec2(self) -> tuple[list[dict], list[dict]]:
        rng = self.rng

        def make(flag: bool) -> dict:
            name = f"{rng.choice(_NAMES)}-{rng.randint(1, 40):02d}"
            item = {
                "InstanceId": f"i-0{_hex(rng, 16)}",
                "InstanceType": rng.choice(("t3.micro", "t3.medium", "m5.large", "c6i.xlarge")),
                "ImageId": f"ami-0{_hex(rng, 16)}",
                "State": {"Code": 16, "Name": "running"},
                "PrivateIpAddress": _ip(rng, False),
                "VpcId": f"vpc-0{_hex(rng, 16)}",
                "SubnetId": f"subnet-0{_hex(rng, 16)}",
                "LaunchTime": self._launch(),
                "Placement": {"AvailabilityZone": f"{self.region}{rng.choice('abc')}"},
                "SecurityGroups": [
                    {
                        "GroupId": f"sg-0{_hex(rng, 16)}",
                        "GroupName": "launch-wizard-3" if flag else f"{name}-sg",
                    },
                ],
                "Tags": [
                    {"Key": "Name", "Value": name},
                    {"Key": "owner", "Value": f"{rng.choice(_TEAMS)}@example.com"},
                ],
            }
            if flag or rng.random() < 0.2:
                item["PublicIpAddress"] = _ip(rng, True)
            return item

        return self._split(make)

    def _ec2_verify(self) -> tuple[list[dict], list[dict]]:
        stopped = self.findings  # "All instances stopped?" true
        items = []
        for instance_id in self.stopped_ids():
            state = "stopped" if stopped or self.rng.random() < 0.5 else "stopping"
            items.append(
                {
                    "InstanceId": instance_id,
                    "State": {"Code": 80 if state == "stopped" else 64, "Name": state},
                }
            )
        if not stopped and all(i["State"]["Name"] == "stopped" for i in items):
            items[0]["State"] = {"Code": 64, "Name": "stopping"}
        return items, [i for i in items if i["State"]["Name"] != "stopped"]

    def stopped_ids(self) -> list[str]:
        parent = self.ds.execution(self.ex.parent_id) if self.ex.parent_id else None
        if parent is not None:
            parent_wf = self.ds.workflow(parent.workflow_id)
            return [i["InstanceId"] for i in World(self.ds, parent_wf, parent, None).flagged]
        return [f"i-0{_hex(self.rng, 16)}" for _ in range(self.rng.randint(1, 4))]

    def _s3(self, encryption: bool = False) -> tuple[list[dict], list[dict]]:
        rng = self.rng

        def make(flag: bool) -> dict:
            item = {
                "Name": f"{rng.choice(_TEAMS)}-"
                f"{rng.choice(('logs', 'assets', 'backup', 'exports'))}-{_hex(rng, 6)}",
                "CreationDate": self._launch(),
                "Region": self.region,
                "PolicyStatus": {"IsPublic": flag and not encryption},
                "PublicAccessBlockConfiguration": dict.fromkeys(
                    (
                        "BlockPublicAcls",
                        "IgnorePublicAcls",
                        "BlockPublicPolicy",
                        "RestrictPublicBuckets",
                    ),
                    not flag or encryption,
                ),
            }
            if encryption:
                item["ServerSideEncryptionConfiguration"] = (
                    None
                    if flag
                    else {
                        "Rules": [
                            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                        ]
                    }
                )
            return item

        return self._split(make, 4, 30)

    def _s3enc(self) -> tuple[list[dict], list[dict]]:
        return self._s3(encryption=True)

    def _iamkeys(self) -> tuple[list[dict], list[dict]]:
        rng = self.rng

        def make(flag: bool) -> dict:
            age = rng.randint(91, 900) if flag else rng.randint(1, 89)
            return {
                "UserName": f"{rng.choice(('svc', 'ci', 'deploy', 'backup'))}-{rng.choice(_NAMES)}",
                "AccessKeyId": f"AKIA{_upper(rng, 16)}",
                "Status": "Active",
                "CreateDate": iso(self.ex.start_ms - age * DAY_MS),
                "AgeDays": age,
            }

        return self._split(make, 3, 12)

    def _inventory(self) -> tuple[list[dict], list[dict]]:
        records = inventory_records(self.rng, self.account, self.region, self.ex.start_ms)
        items, flagged = [], []
        for _ in range(self.rng.randint(40, 160)):
            text, untagged = next(records)
            item = json.loads(text)
            items.append(item)
            if untagged and self.findings:
                flagged.append(item)
        if self.findings and not flagged:
            items[0]["Tags"] = []
            flagged.append(items[0])
        return items, flagged

    def _sg(self) -> tuple[list[dict], list[dict]]:
        rng = self.rng

        def make(flag: bool) -> dict:
            return {
                "GroupId": f"sg-0{_hex(rng, 16)}",
                "GroupName": f"{rng.choice(_NAMES)}-{rng.choice(('old', 'tmp', 'sg', 'test'))}",
                "VpcId": f"vpc-0{_hex(rng, 16)}",
                "Description": "launch-wizard created" if flag else "managed by terraform",
                "IpPermissions": [
                    {
                        "IpProtocol": "tcp",
                        "FromPort": 22,
                        "ToPort": 22,
                        "IpRanges": [{"CidrIp": "10.0.0.0/8"}],
                    }
                ],
                "AttachedEniCount": 0 if flag else rng.randint(1, 6),
            }

        return self._split(make, 5, 25)

    def _rds(self) -> tuple[list[dict], list[dict]]:
        rng = self.rng

        def make(flag: bool) -> dict:
            name = f"{rng.choice(_TEAMS)}-{rng.choice(('db', 'pg', 'mysql'))}-{rng.randint(1, 9)}"
            return {
                "DBInstanceIdentifier": name,
                "DBInstanceClass": rng.choice(("db.t3.medium", "db.r6g.large")),
                "Engine": rng.choice(("postgres", "mysql", "aurora-postgresql")),
                "DBInstanceStatus": "available",
                "PubliclyAccessible": flag,
                "Endpoint": {
                    "Address": f"{name}.c{_hex(rng, 10)}.{self.region}.rds.amazonaws.com",
                    "Port": 5432,
                },
                "DBInstanceArn": f"arn:aws:rds:{self.region}:{self.account}:db:{name}",
            }

        return self._split(make, 2, 10)

    def _cloudtrail(self) -> tuple[list[dict], list[dict]]:
        rng = self.rng
        items = [
            {
                "EventId": new_uuid(rng),
                "EventName": rng.choice(("ConsoleLogin", "GetCallerIdentity", "ListBuckets")),
                "EventTime": iso(self.ex.start_ms - rng.randint(1, 86_400_000)),
                "Username": "root",
                "EventSource": "signin.amazonaws.com",
                "SourceIPAddress": _ip(rng, True),
            }
            for _ in range(rng.randint(0, 4))
        ]
        return items, items

    def _nsg(self) -> tuple[list[dict], list[dict]]:
        rng = self.rng
        rg = self.ex.settings.get("resourceGroup", "DefaultResourceGroup-CIN")

        def make(flag: bool) -> dict:
            name = f"nsg-{rng.choice(_NAMES)}-{_hex(rng, 4)}"
            base = (
                f"/subscriptions/{self.account}/resourceGroups/{rg}/providers/"
                f"Microsoft.Network/networkSecurityGroups/{name}"
            )
            return {
                "id": base,
                "name": name,
                "location": rng.choice(("centralindia", "westeurope", "eastus")),
                "properties": {
                    "securityRules": [
                        {
                            "id": f"{base}/securityRules/AllowRDP",
                            "name": "AllowRDP",
                            "properties": {
                                "protocol": "Tcp",
                                "sourcePortRange": "*",
                                "destinationPortRange": "3389",
                                "sourceAddressPrefix": "*" if flag else "10.0.0.0/8",
                                "destinationAddressPrefix": "*",
                                "access": "Allow",
                                "priority": 300,
                                "direction": "Inbound",
                                "provisioningState": "Succeeded",
                            },
                        }
                    ]
                },
            }

        return self._split(make, 2, 12)

    def _azsp(self) -> tuple[list[dict], list[dict]]:
        rng = self.rng

        def make(flag: bool) -> dict:
            end = (
                self.ex.start_ms + (-rng.randint(1, 300) if flag else rng.randint(30, 700)) * DAY_MS
            )
            return {
                "appId": new_uuid(rng),
                "displayName": f"{rng.choice(_TEAMS)}-{rng.choice(('ci', 'sync', 'exporter'))}",
                "passwordCredentials": [
                    {
                        "keyId": new_uuid(rng),
                        "displayName": "client-secret",
                        "hint": _hex(rng, 3),
                        "startDateTime": iso(end - 730 * DAY_MS),
                        "endDateTime": iso(end),
                    }
                ],
            }

        return self._split(make, 3, 14)

    def _gcs(self) -> tuple[list[dict], list[dict]]:
        rng = self.rng
        project = self.ex.settings.get("project", "gcp-qualys-demo")

        def make(flag: bool) -> dict:
            name = f"{project}-{rng.choice(('static', 'exports', 'ml-data', 'tmp'))}-{_hex(rng, 4)}"
            return {
                "kind": "storage#bucket",
                "id": name,
                "name": name,
                "projectNumber": str(rng.randint(10**11, 10**12 - 1)),
                "location": rng.choice(("US", "EU", "ASIA-SOUTH1")),
                "storageClass": "STANDARD",
                "iamConfiguration": {
                    "uniformBucketLevelAccess": {"enabled": not flag},
                    "publicAccessPrevention": "inherited",
                },
                "iamBindings": [
                    {
                        "role": "roles/storage.objectViewer",
                        "members": ["allUsers"] if flag else [f"group:{name}@example.com"],
                    }
                ],
            }

        return self._split(make, 3, 20)

    def _gcpkeys(self) -> tuple[list[dict], list[dict]]:
        rng = self.rng
        project = self.ex.settings.get("project", "gcp-qualys-demo")

        def make(flag: bool) -> dict:
            sa = (
                f"{rng.choice(('terraform', 'etl', 'looker', 'backup'))}@{project}"
                ".iam.gserviceaccount.com"
            )
            return {
                "name": f"projects/{project}/serviceAccounts/{sa}/keys/{_hex(rng, 40)}",
                "validAfterTime": iso(self.ex.start_ms - rng.randint(100, 900) * DAY_MS),
                "validBeforeTime": "9999-12-31T23:59:59Z",
                "keyAlgorithm": "KEY_ALG_RSA_2048",
                "keyOrigin": "GOOGLE_PROVIDED",
                "keyType": "USER_MANAGED",
                "lastUsed": iso(
                    self.ex.start_ms
                    - (rng.randint(91, 400) if flag else rng.randint(0, 30)) * DAY_MS
                ),
            }

        return self._split(make, 2, 10)

    def _ocibucket(self) -> tuple[list[dict], list[dict]]:
        rng = self.rng

        def make(flag: bool) -> dict:
            return {
                "name": f"{rng.choice(_TEAMS)}-{rng.choice(('reports', 'uploads', 'archive'))}",
                "namespace": "axq" + _hex(rng, 9),
                "compartmentId": self.ex.settings.get("compartment", ""),
                "publicAccessType": rng.choice(("ObjectRead", "ObjectReadWithoutList"))
                if flag
                else "NoPublicAccess",
                "createdBy": f"ocid1.user.oc1..aaaaaaaa{_hex(rng, 40)}",
                "timeCreated": self._launch(),
                "etag": new_uuid(rng),
            }

        return self._split(make, 2, 12)

    def _ocisl(self) -> tuple[list[dict], list[dict]]:
        rng = self.rng

        def make(flag: bool) -> dict:
            return {
                "id": f"ocid1.securitylist.oc1.{self.region}.aaaaaaaa{_hex(rng, 40)}",
                "displayName": f"{rng.choice(_NAMES)}-security-list",
                "ingressSecurityRules": [
                    {
                        "protocol": "6",
                        "source": "0.0.0.0/0" if flag else "10.0.0.0/16",
                        "tcpOptions": {"destinationPortRange": {"min": 22, "max": 22}},
                        "isStateless": False,
                    }
                ],
                "lifecycleState": "AVAILABLE",
            }

        return self._split(make, 2, 10)


# --- action results ------------------------------------------------------------------------


def act(world: World, method: str, item: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    request_id = {"RequestId": new_uuid(rng), "HTTPStatusCode": 200}
    if method == "stopInstances":
        return {
            "StoppingInstances": [
                {
                    "CurrentState": {"Code": 64, "Name": "stopping"},
                    "InstanceId": item["InstanceId"],
                    "PreviousState": {"Code": 16, "Name": "running"},
                }
            ],
            "InstanceIds": [item["InstanceId"]],
        }
    if method == "putPublicAccessBlock":
        return {
            "Bucket": item["Name"],
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
            "ResponseMetadata": request_id,
        }
    if method == "putBucketEncryption":
        return {
            "Bucket": item["Name"],
            "ServerSideEncryptionConfiguration": {
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": f"arn:aws:kms:{world.region}:{world.account}"
                            ":alias/s3-default",
                        },
                        "BucketKeyEnabled": True,
                    }
                ]
            },
            "ResponseMetadata": request_id,
        }
    if method == "createAccessKey":
        # A real leak: the dashboard must mask SecretAccessKey before storing or showing it.
        return {
            "AccessKey": {
                "UserName": item["UserName"],
                "AccessKeyId": f"AKIA{_upper(rng, 16)}",
                "Status": "Active",
                "SecretAccessKey": _secret(rng),
                "CreateDate": iso(world.ex.start_ms + 30_000),
            },
            "ResponseMetadata": request_id,
        }
    if method == "updateAccessKey":
        return {
            "UserName": item["UserName"],
            "AccessKeyId": item["AccessKeyId"],
            "Status": "Inactive",
            "ResponseMetadata": request_id,
        }
    if method == "tagResources":
        return {
            "FailedResourcesMap": {},
            "ResourceARNList": [item["ResourceARN"]],
            "Tags": {"owner": "secops@example.com", "cost-center": "unassigned"},
            "ResponseMetadata": request_id,
        }
    if method == "deleteSecurityGroup":
        return {"GroupId": item["GroupId"], "Return": True, "ResponseMetadata": request_id}
    if method == "modifyDBInstance":
        return {
            "DBInstance": {
                "DBInstanceIdentifier": item["DBInstanceIdentifier"],
                "PubliclyAccessible": False,
                "DBInstanceStatus": "modifying",
                "PendingModifiedValues": {},
            },
            "ResponseMetadata": request_id,
        }
    if method == "securityRules.createOrUpdate":
        rule = item["properties"]["securityRules"][0]
        return {
            "id": rule["id"],
            "name": rule["name"],
            "etag": f'W/"{new_uuid(rng)}"',
            "properties": {
                **rule["properties"],
                "access": "Deny",
                "provisioningState": "Succeeded",
            },
        }
    if method == "removePassword":
        return {
            "appId": item["appId"],
            "keyId": item["passwordCredentials"][0]["keyId"],
            "status": 204,
        }
    if method == "buckets.patch":
        return {
            "kind": "storage#bucket",
            "name": item["name"],
            "updated": iso(world.ex.start_ms),
            "iamConfiguration": {
                "uniformBucketLevelAccess": {"enabled": True},
                "publicAccessPrevention": "enforced",
            },
        }
    if method == "serviceAccounts.keys.delete":
        return {"name": item["name"], "deleted": True}
    if method == "updateBucket":
        return {
            "name": item["name"],
            "namespace": item["namespace"],
            "publicAccessType": "NoPublicAccess",
            "etag": new_uuid(rng),
            "opc-request-id": _hex(rng, 32).upper(),
        }
    if method == "updateSecurityList":
        return {
            "id": item["id"],
            "displayName": item["displayName"],
            "ingressSecurityRules": [],
            "lifecycleState": "AVAILABLE",
            "opc-request-id": _hex(rng, 32).upper(),
        }
    return {"result": "ok", "item": item}


# --- the big inventory ---------------------------------------------------------------------

_INVENTORY_TYPES = (
    (
        "AWS::EC2::Instance",
        "ec2",
        "instance/i-0{h}",
        '{{"instanceType":"m5.large","state":"running","vpcId":"vpc-0{h2}",'
        '"privateIpAddress":"10.{a}.{b}.{c}","imageId":"ami-0{h2}"}}',
    ),
    (
        "AWS::EC2::Volume",
        "ec2",
        "volume/vol-0{h}",
        '{{"size":{a},"volumeType":"gp3","state":"in-use","encrypted":false,'
        '"attachments":[{{"instanceId":"i-0{h2}","device":"/dev/xvda"}}]}}',
    ),
    (
        "AWS::S3::Bucket",
        "s3",
        "{name}-{h8}",
        '{{"creationDate":"{date}","versioning":"Suspended","publicAccessBlock":false}}',
    ),
    (
        "AWS::RDS::DBSnapshot",
        "rds",
        "snapshot:rds:{name}-{h8}",
        '{{"engine":"postgres","allocatedStorage":{a},"encrypted":true,"status":"available"}}',
    ),
    (
        "AWS::Lambda::Function",
        "lambda",
        "function:{name}-{h8}",
        '{{"runtime":"python3.9","memorySize":{m},"timeout":30,"lastModified":"{date}"}}',
    ),
    (
        "AWS::EC2::SecurityGroup",
        "ec2",
        "security-group/sg-0{h}",
        '{{"groupName":"{name}-sg","vpcId":"vpc-0{h2}","ipPermissions":[{{"ipProtocol":"tcp",'
        '"fromPort":443,"toPort":443,"ipRanges":["0.0.0.0/0"]}}]}}',
    ),
    (
        "AWS::DynamoDB::Table",
        "dynamodb",
        "table/{name}-{h8}",
        '{{"billingMode":"PAY_PER_REQUEST","itemCount":{big},"tableSizeBytes":{big}}}',
    ),
)


def inventory_records(
    rng: random.Random, account: str, region: str, when_ms: int
) -> Iterator[tuple[str, bool]]:
    """Endless (JSON text, untagged?) inventory records, fast enough for 10 MB in well < 1 s."""
    getrandbits, date = rng.getrandbits, iso(when_ms - 40 * DAY_MS)
    while True:
        kind, service, path, config = _INVENTORY_TYPES[getrandbits(16) % len(_INVENTORY_TYPES)]
        name = _NAMES[getrandbits(8) % len(_NAMES)]
        values = {
            "h": f"{getrandbits(64):016x}",
            "h2": f"{getrandbits(64):016x}",
            "h8": f"{getrandbits(32):08x}",
            "name": name,
            "date": date,
            "a": getrandbits(5),
            "b": getrandbits(8),
            "c": getrandbits(8) | 1,
            "m": 128 << (getrandbits(3) % 4),
            "big": getrandbits(24),
        }
        arn = f"arn:aws:{service}:{region}:{account}:{path.format(**values)}"
        untagged = getrandbits(8) < 90
        team = _TEAMS[getrandbits(8) % len(_TEAMS)]
        tags = (
            "[]"
            if untagged
            else (
                f'[{{"Key":"Name","Value":"{name}"}},{{"Key":"owner","Value":"{team}@example.com"}}]'
            )
        )
        yield (
            f'{{"ResourceARN":"{arn}","ResourceType":"{kind}","Region":"{region}",'
            f'"AccountId":"{account}","Tags":{tags},"ConfigurationItemCaptureTime":"{date}",'
            f'"ConfigurationItemStatus":"OK","Configuration":{config.format(**values)},'
            f'"ComplianceType":"{"NON_COMPLIANT" if untagged else "COMPLIANT"}"}}',
            untagged,
        )


@functools.lru_cache(maxsize=4)
def big_inventory(key: str, account: str, region: str, when_ms: int, size: int) -> str:
    """A full-inventory output of about `size` bytes, as JSON text."""
    rng = random.Random(key)
    parts: list[str] = []
    total = 0
    for text, _ in inventory_records(rng, account, region, when_ms):
        parts.append(text)
        total += len(text) + 1
        if total >= size:
            break
    return (
        '{"collection":[' + ",".join(parts) + f'],"stepMessage":"Fetched {len(parts)} '
        f'resources in {region}","success":true,"meta":{{"shouldShowStepMessage":true,'
        f'"step":{{"message":"Fetched {len(parts)} resources"}},"inputMeta":{{"length":0}},'
        f'"outputMeta":{{"length":{len(parts)}}}}}}}'
    )


# --- step payloads -------------------------------------------------------------------------


def _global_variables(ex: Execution) -> dict[str, Any]:
    settings = ex.settings
    out: dict[str, Any] = {
        "region": settings.get("region", []),
        "resourceGroup": [settings["resourceGroup"]] if "resourceGroup" in settings else [],
        "project": [settings["project"]] if "project" in settings else [],
        "credentials": MASK,
        "credentials_azure": MASK,
        "credentials_gcp": MASK,
        "taskQueue": "soar_conductor_task",
    }
    if ex.cloud == OCI:
        out["oci_region"] = settings["oci_region"]
        out["compartment"] = settings["compartment"]
    return out


def _meta(message: str, n_in: int, n_out: int) -> dict[str, Any]:
    return {
        "shouldShowStepMessage": True,
        "step": {"message": message},
        "inputMeta": {"length": n_in},
        "outputMeta": {"length": n_out},
    }


class _Payloads:
    def __init__(self, ds: Dataset, ex: Execution, step: Step) -> None:
        self.ds, self.ex, self.step = ds, ex, step
        wf = ds.workflow(ex.workflow_id)
        assert wf is not None  # noqa: S101 - executions always belong to a workflow
        self.wf = wf
        self.component = wf.nodes[step.node_id]
        self.rng = random.Random(f"{ds.seed}:{ex.id}:{step.node_id}")

    @functools.cached_property
    def world(self) -> World:
        return World(
            self.ds,
            self.wf,
            self.ex,
            self.component["inputs"].get("region") if self.wf.spec.shape == "sweep" else None,
        )

    def common(self) -> dict[str, Any]:
        inputs = dict(self.component["inputs"])
        if "credentials" in inputs:
            inputs["credentials"] = MASK
        for key in ("region", "resourceGroup", "project", "compartment"):
            if str(inputs.get(key, "")).startswith("$wf.variables:"):
                var = "oci_region" if key == "region" and self.ex.cloud == OCI else key
                inputs[key] = self.ex.settings.get(var, "")
        return {
            **inputs,
            "executionId": self.ex.id,
            "workflowId": self.wf.id,
            "customerId": self.ds.customer_id,
            "credentials_azure": MASK,
            "credentials_gcp": MASK,
        }

    def trigger_output(self) -> Any:
        ex = self.ex
        if ex.input is not None:
            return ex.input
        if ex.source == "WORKFLOW_TRIGGER":
            return {"collection": self.parent_action_results()}
        if ex.source == "EVENT":
            rng = self.rng
            service = self.wf.spec.fetch.service if self.wf.spec.fetch else "events"
            return {
                "version": "0",
                "id": new_uuid(rng),
                "detail-type": "AWS API Call via CloudTrail"
                if ex.cloud == AWS
                else "Resource change event",
                "source": f"{ex.cloud.lower()}.{service.lower()}",
                "account": ex.connector.account,
                "time": iso(ex.start_ms - rng.randint(2000, 20000)),
                "region": ex.settings.get("region", ex.settings.get("oci_region", "")),
                "detail": {
                    "eventName": rng.choice(
                        (
                            "CreateBucket",
                            "RunInstances",
                            "AuthorizeSecurityGroupIngress",
                            "PutBucketPolicy",
                        )
                    ),
                    "userIdentity": {
                        "type": "AssumedRole",
                        "arn": f"arn:aws:sts::{ex.connector.account}:assumed-role/Admin/jdoe",
                    },
                },
            }
        if ex.source == "SCHEDULE":
            return {
                "scheduledAt": iso(ex.start_ms),
                "cron": f"0 {self.wf.spec.schedule_hour} * * *",
            }
        return {}

    def parent_action_results(self) -> list[dict[str, Any]]:
        parent = self.ds.execution(self.ex.parent_id) if self.ex.parent_id else None
        if parent is None:
            return []
        stop = next((s for s in parent.steps if s.node_type == "action"), None)
        if stop is None:
            return []
        return _Payloads(self.ds, parent, stop).action_results()

    def action_results(self) -> list[dict[str, Any]]:
        method = self.component["inputs"].get("method", "")
        items = self.world.flagged
        return [act(self.world, method, item, self.rng) for item in items]

    def failed_output(self, status: str) -> dict[str, Any]:
        message = self.step.error or (
            "Execution cancelled by user" if status == CANCELLED else "Step failed"
        )
        code = message.split(":", 1)[0] if ":" in message else status
        return {
            "success": False,
            "stepMessage": message,
            "error": {"code": code, "message": message},
            "meta": _meta(message, 0, 0),
        }

    def input(self) -> Any:
        kind = self.component["type"]
        gv = _global_variables(self.ex)
        if kind == "trigger":
            return {
                "triggerType": {
                    "SCHEDULE": "CronTrigger",
                    "EVENT": "Event",
                    "UI": "Manual",
                    "PUBLIC_API": "PublicApi",
                    "WORKFLOW_TRIGGER": "WorkflowTrigger",
                }[self.ex.source],
                "source": self.ex.source,
                "triggeredBy": self.ex.created_by,
                "workflowId": self.wf.id,
                "executionId": self.ex.id,
                "customerId": self.ds.customer_id,
                "overrideVariables": self.ex.overrides,
                "globalVariables": gv,
            }
        if kind == "resource":
            collection = []
            if self.wf.spec.kind == "ec2_verify":
                collection = [{"InstanceIds": self.world.stopped_ids()}]
            return {**self.common(), "collection": collection, "globalVariables": gv}
        if kind == "filter":
            if self.ex.big:
                # The full inventory is not copied into the next step's input.
                node, size = next(iter(self.ex.big.items()))
                return {
                    **self.common(),
                    "collection": [],
                    "globalVariables": gv,
                    "previousOutput": {"nodeId": node, "bytes": size, "truncated": True},
                }
            return {**self.common(), "collection": self.world.items, "globalVariables": gv}
        if kind in ("action", "notification", "wait"):
            return {**self.common(), "collection": self.world.flagged, "globalVariables": gv}
        # qualysevent, shaped like the seed's step input
        results = self.action_results_before()
        return {
            "selectedResource": {
                "selectedResourceId": f"{self.step.node_id}-workflow-trigger",
                "path": "",
                "context": {"outputPath": ""},
                "label": "WorkflowTrigger",
            },
            "resourceGroup": [],
            "previousOutputPath": "",
            "method": "RunWorkflow",
            "credentials": MASK,
            "previousOutputIsModified": True,
            "project": [],
            "credentials_azure": MASK,
            "waitForCompletion": False,
            "executionId": self.ex.id,
            "credentials_gcp": MASK,
            "cloudType": "QUALYS",
            "service": "QFLOW",
            "customerId": self.ds.customer_id,
            "conditionalSettings": {"expression": "", "conditions": []},
            "region": self.ex.settings.get("region", ""),
            "workflowId": self.component["inputs"].get("workflowId"),
            "resourceType": "Workflow",
            "previousOutputContext": {"outputPath": ""},
            "collection": results,
            "globalVariables": gv,
        }

    def action_results_before(self) -> list[dict[str, Any]]:
        stop = next((s for s in self.ex.steps if s.node_type == "action"), None)
        return _Payloads(self.ds, self.ex, stop).action_results() if stop else []

    def output(self, status: str) -> Any:
        if status != SUCCESS:
            return self.failed_output(status)
        kind = self.component["type"]
        if kind == "trigger":
            return self.trigger_output()
        if kind == "resource":
            items = self.world.items
            message = (
                f"Fetched {len(items)} {self.component['inputs'].get('resourceType')} resources"
            )
            return {
                "collection": items,
                "stepMessage": message,
                "success": True,
                "meta": _meta(message, 0, len(items)),
            }
        if kind == "filter":
            flagged = self.world.flagged
            message = f"{len(flagged)} of {len(self.world.items)} items matched"
            return {
                "collection": flagged,
                "result": self.step.branch == "true",
                "branch": self.step.branch,
                "stepMessage": message,
                "success": True,
                "meta": _meta(message, len(self.world.items), len(flagged)),
            }
        if kind == "action":
            results = self.action_results()
            method = self.component["inputs"].get("method", "")
            message = f"{method} succeeded for {len(results)} resources"
            return {
                "collection": results,
                "stepMessage": message,
                "success": True,
                "meta": _meta(message, len(self.world.flagged), len(results)),
            }
        if kind == "wait":
            seconds = round((self.step.end_ms - self.step.start_ms) / 1000)
            return {
                "waitedSeconds": seconds,
                "stepMessage": f"Waited {seconds} s",
                "success": True,
                "meta": _meta(f"Waited {seconds} s", 0, 0),
            }
        if kind == "notification":
            inputs = self.component["inputs"]
            if inputs.get("channel") == "slack":
                return {
                    "ok": True,
                    "channel": f"C0{_upper(self.rng, 8)}",
                    "ts": f"{self.step.end_ms / 1000:.6f}",
                    "success": True,
                    "stepMessage": "Posted to #cloud-governance",
                }
            recipients = next(
                (v["value"] for v in self.wf.variables if v["key"] == "notifyEmail"),
                ["secops@example.com"],
            )
            return {
                "messageId": f"<{_hex(self.rng, 24)}@email.amazonses.com>",
                "status": "sent",
                "accepted": recipients,
                "subject": inputs.get("subject"),
                "success": True,
                "stepMessage": "Notification sent",
            }
        return self.envelopes()

    def envelopes(self) -> list[dict[str, Any]]:
        """A qualysevent output: the trigger envelopes of the child executions (seed 000)."""
        child = next(
            (
                cid
                for pid, node, cid in self.ds.linked
                if pid == self.ex.id and node == self.step.node_id
            ),
            None,
        )
        connector = self.ex.connector
        region = self.ex.settings.get("region", "us-east-1")
        return [
            {
                "source": "WORKFLOW_TRIGGER",
                "customerId": self.ds.customer_id,
                "workflowId": self.component["inputs"].get("workflowId"),
                "input": {"collection": self.action_results_before()},
                "executionId": child or new_uuid(self.rng),
                "forceRun": False,
                "overrideVariables": [
                    {"key": "depthCount", "value": 2, "type": "user-defined"},
                    {"key": "region", "value": [region], "type": "system-defined"},
                    {
                        "key": "credentials",
                        "value": [
                            {
                                "type": "role",
                                "arn": f"arn:aws:iam::{connector.account}:role/QFLOW_1",
                                "externalId": "AWS",
                                "account": connector.account,
                                "accountId": connector.account,
                                "portalUuid": connector.portal_id,
                                "isMigrated": True,
                                "connectorId": connector.portal_id,
                                "qflowConnectorId": connector.id,
                            }
                        ],
                        "type": "system-defined",
                    },
                    {
                        "type": "user-defined",
                        "value": {
                            "method": "stopInstances",
                            "service": "EC2",
                            "cloudtype": "AWS",
                            "resourceType": "EC2_INSTANCE",
                        },
                        "key": "rawParams",
                    },
                ],
            }
        ]


def payload_text(ds: Dataset, ex: Execution, step: Step, which: str, status: str) -> str:
    """The step's input or output as JSON text (status: the step's status now, not Running)."""
    size = ex.big.get(step.node_id)
    if which == OUTPUT and size and status == SUCCESS:
        return big_inventory(
            f"{ds.seed}:{ex.id}:{step.node_id}:big",
            ex.connector.account,
            ex.settings.get("region", "us-east-1"),
            ex.start_ms,
            size,
        )
    maker = _Payloads(ds, ex, step)
    value = maker.input() if which == INPUT else maker.output(status)
    return json.dumps(value, separators=(",", ":"))
