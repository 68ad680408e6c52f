"""The provisioner's pure decisions: what a task claims, which role it runs with, whether that role agrees
(the shared rules), whether the token in a secret is still good, how a secret's document is rewritten, which
clusters are served, and the summary's shape."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kuma_iam.provisioning.agreement import Agreed, Disagreement, identity_agreement
from kuma_iam.provisioning.clusters import ServedClusters, parse_clusters
from kuma_iam.provisioning.freshness import Staleness, TokenVerdict, judge_token
from kuma_iam.provisioning.secrets import SecretVersion, parse_document
from kuma_iam.provisioning.summary import Issued, ProvisioningSummary, Skipped, SkipReason
from kuma_iam.provisioning.tasks import EcsTask, RoleRef, Skip, TaskClaim, task_claim, task_role
from kuma_iam.roles import RoleRecord
from kuma_iam.rules import RULES
from kuma_iam.tokens import jwt
from kuma_iam.tokens.claims import DataplaneIdentity

ACCOUNT = "111111111111"
CLUSTER = f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/mesh"
TASK = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/mesh/0f3c"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def task(tags: dict[str, str] | None = None, *, desired: str = "RUNNING") -> EcsTask:
    return EcsTask(
        TASK, CLUSTER, desired, f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/a:1", None, tags or {}
    )


def role(tags: dict[str, str], name: str = "backend-task") -> RoleRecord:
    return RoleRecord(
        ACCOUNT, name, f"arn:aws:iam::{ACCOUNT}:role/ecs/{name}", "AROAEXAMPLE000000001", "/ecs/", tags
    )


DATAPLANE = {"kuma.io/type": "dataplane", "kuma.io/mesh": "default"}


# --- what a task claims ----------------------------------------------------------------------------------


def test_ecs_description_is_read_with_the_override_role_and_tags() -> None:
    described = {
        "taskArn": TASK,
        "clusterArn": CLUSTER,
        "desiredStatus": "RUNNING",
        "lastStatus": "DEACTIVATING",
        "taskDefinitionArn": "arn:aws:ecs:us-east-1:111111111111:task-definition/a:3",
        "overrides": {"taskRoleArn": "arn:aws:iam::111111111111:role/other", "containerOverrides": []},
        "tags": [{"key": "kuma.io/service", "value": "backend"}, {"key": "team", "value": "x"}],
    }
    parsed = EcsTask.from_ecs(described)
    assert parsed.role_override == "arn:aws:iam::111111111111:role/other"
    assert parsed.tags == {"kuma.io/service": "backend", "team": "x"}
    assert EcsTask.from_ecs({"taskArn": TASK, "clusterArn": CLUSTER}).tags == {}


def test_a_description_of_another_shape_than_ecss_is_read_as_absent_never_as_something_else() -> None:
    # Given a description whose fields are not what ECS sends (a stand-in, a proxy, a future format)
    described = {
        "taskArn": TASK,
        "clusterArn": CLUSTER,
        "desiredStatus": ["RUNNING"],
        "taskDefinitionArn": 7,
        "overrides": "taskRoleArn",
        "tags": [
            {"key": "kuma.io/service", "value": {"backend": True}},
            {"key": ["kuma.io/mesh"], "value": "default"},
            "kuma.io/workload=api",
            {"key": "team", "value": "x"},
        ],
    }

    # When it is read
    parsed = EcsTask.from_ecs(described)

    # Then nothing but the well-formed tag is believed: the task is no mesh task, and stopping
    assert parsed.tags == {"team": "x"}
    assert (parsed.desired_status, parsed.task_definition_arn, parsed.role_override) == ("", None, None)
    assert isinstance(task_claim(parsed), Skip)
    assert EcsTask.from_ecs({**described, "tags": {"kuma.io/service": "backend"}}).tags == {}


@pytest.mark.parametrize("missing", ["taskArn", "clusterArn"])
def test_a_description_without_the_tasks_arn_or_cluster_is_no_answer_of_ecs(missing: str) -> None:
    described: dict[str, Any] = {"taskArn": TASK, "clusterArn": CLUSTER, missing: None}
    with pytest.raises(KeyError):  # aws.aws_errors: "the answer lacks expected fields", a 503
        EcsTask.from_ecs(described)


@pytest.mark.parametrize(
    ("tags", "desired", "expected"),
    [
        ({"kuma.io/service": "backend"}, "RUNNING", ("backend", None, None)),
        (
            {"kuma.io/service": "backend", "kuma.io/mesh": "payments", "kuma.io/workload": "api"},
            "RUNNING",
            ("backend", "payments", "api"),
        ),
        ({"kuma.io/service": "backend"}, "STOPPED", SkipReason.TASK_STOPPING),
        ({}, "RUNNING", SkipReason.UNTAGGED),
        ({"Kuma.io/Service": "backend"}, "RUNNING", SkipReason.UNTAGGED),  # ECS tag keys have case
        ({"kuma.io/service": "bad service"}, "RUNNING", SkipReason.INVALID_TASK_TAGS),
        ({"kuma.io/service": "a/b"}, "RUNNING", SkipReason.INVALID_TASK_TAGS),  # would leave <prefix>/
        ({"kuma.io/service": "../admin"}, "RUNNING", SkipReason.INVALID_TASK_TAGS),
        ({"kuma.io/service": ".."}, "RUNNING", SkipReason.INVALID_TASK_TAGS),
        ({"kuma.io/service": "backend/../frontend"}, "RUNNING", SkipReason.INVALID_TASK_TAGS),
        ({"kuma.io/service": "backend "}, "RUNNING", SkipReason.INVALID_TASK_TAGS),
        ({"kuma.io/service": "back\nend"}, "RUNNING", SkipReason.INVALID_TASK_TAGS),
        ({"kuma.io/service": ""}, "RUNNING", SkipReason.INVALID_TASK_TAGS),
        ({"kuma.io/service": "b" * 254}, "RUNNING", SkipReason.INVALID_TASK_TAGS),
        ({"kuma.io/service": "b" * 253}, "RUNNING", ("b" * 253, None, None)),
        ({"kuma.io/service": "backend", "kuma.io/mesh": "Default"}, "RUNNING", SkipReason.INVALID_TASK_TAGS),
    ],
)
def test_what_a_task_claims(tags: dict[str, str], desired: str, expected: Any) -> None:
    claim = task_claim(task(tags, desired=desired))
    if isinstance(expected, SkipReason):
        assert isinstance(claim, Skip)
        assert claim.reason is expected
    else:
        assert isinstance(claim, TaskClaim)
        assert (claim.service, claim.mesh, claim.workload) == expected


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        (f"arn:aws:iam::{ACCOUNT}:role/ecs/backend-task", RoleRef(ACCOUNT, "backend-task", "")),
        (f"arn:aws:iam::{ACCOUNT}:role/a/b/c/Svc_Task+1", RoleRef(ACCOUNT, "Svc_Task+1", "")),
        (None, SkipReason.NO_TASK_ROLE),
        ("", SkipReason.NO_TASK_ROLE),
        (f"arn:aws:iam::{ACCOUNT}:user/someone", SkipReason.INVALID_TASK_ROLE),
        (f"arn:aws:iam::{ACCOUNT}:role/", SkipReason.INVALID_TASK_ROLE),
        ("arn:aws:iam::333333333333:role/backend-task", SkipReason.ACCOUNT_NOT_AUTHORIZED),
    ],
)
def test_the_role_a_task_runs_with(arn: str | None, expected: Any) -> None:
    found = task_role(arn, {ACCOUNT})
    if isinstance(expected, SkipReason):
        assert isinstance(found, Skip)
        assert found.reason is expected
    else:
        assert isinstance(found, RoleRef)
        assert (found.account, found.name, found.arn) == (expected.account, expected.name, arn)


# --- does the role agree ---------------------------------------------------------------------------------


def claim(service: str = "backend", mesh: str | None = None, workload: str | None = None) -> TaskClaim:
    return TaskClaim(task(), service, mesh, workload)


@pytest.mark.parametrize(
    ("role_tags", "claimed", "expected"),
    [
        (DATAPLANE | {"kuma.io/service": "backend"}, claim(), ("backend", "default", None)),
        (DATAPLANE, claim("anything"), ("anything", "default", None)),
        (DATAPLANE, claim(mesh="default", workload="w1"), ("backend", "default", "w1")),
        (DATAPLANE | {"kuma.io/workload": "w2"}, claim(), ("backend", "default", "w2")),
        (DATAPLANE | {"kuma.io/service": "other"}, claim(), SkipReason.SERVICE_MISMATCH),
        (DATAPLANE, claim(mesh="payments"), SkipReason.MESH_MISMATCH),
        (DATAPLANE | {"kuma.io/workload": "w2"}, claim(workload="w1"), SkipReason.WORKLOAD_MISMATCH),
        ({"kuma.io/type": "ingress"}, claim(), SkipReason.TYPE_MISMATCH),
        ({"kuma.io/type": "egress"}, claim(), SkipReason.TYPE_MISMATCH),
        ({}, claim(), SkipReason.INVALID_ROLE_TAGS),
        ({"kuma.io/type": "dataplane"}, claim(), SkipReason.INVALID_ROLE_TAGS),
        (DATAPLANE | {"Kuma.io/Service": "other"}, claim(), SkipReason.INVALID_ROLE_TAGS),
    ],
)
def test_a_role_agrees_with_its_tasks_tags_by_the_shared_rules(
    role_tags: dict[str, str], claimed: TaskClaim, expected: Any
) -> None:
    decided = identity_agreement(claimed, role(role_tags))
    if isinstance(expected, SkipReason):
        assert isinstance(decided, Disagreement)
        assert decided.reason is expected
        assert decided.finding.rule == "provisioner-identity-mismatch"
        assert decided.finding.rule in RULES
        assert decided.finding.role_name == "backend-task"
        assert decided.finding.account == ACCOUNT
        assert expected.value in decided.finding.message
        assert claimed.service in decided.finding.message
    else:
        assert isinstance(decided, Agreed)
        identity = decided.identity
        assert (identity.service, identity.mesh, identity.workload) == expected
        # One token for every task of the service: no Name, the service bound by its tag
        assert decided.token_identity == DataplaneIdentity(
            name="", mesh=expected[1], services=(expected[0],), workload=expected[2]
        )


def test_a_finding_names_the_tag_in_disagreement_and_a_role_without_kuma_tags_names_its_problem() -> None:
    mismatch = identity_agreement(claim(), role(DATAPLANE | {"kuma.io/service": "other"}))
    assert isinstance(mismatch, Disagreement)
    assert mismatch.finding.tag_keys == ("kuma.io/service",)
    untagged = identity_agreement(claim(), role({}))
    assert isinstance(untagged, Disagreement)
    assert untagged.finding.tag_keys == ("kuma.io/type",)
    assert "kuma-type-missing" in untagged.detail


# --- is the token still good -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {kid: rsa.generate_private_key(public_exponent=65537, key_size=2048) for kid in ("1", "2")}


IDENTITY = DataplaneIdentity(name="", mesh="default", services=("backend",))


def token(
    key: rsa.RSAPrivateKey, *, kid: str = "1", expires_in: timedelta = timedelta(hours=20), **claims: Any
) -> str:
    document = {
        **IDENTITY.claims(),
        "jti": str(uuid.uuid4()),
        "iat": int(NOW.timestamp()) - 300,
        "nbf": int(NOW.timestamp()) - 300,
        "exp": int((NOW + expires_in).timestamp()),
        **claims,
    }
    signing_input = jwt.signing_input(kid, document)
    return jwt.compact(signing_input, key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256()))


def judged(
    value: object, keys: dict[str, rsa.RSAPrivateKey] | None, *, published: tuple[str, ...] = ("1", "2")
) -> TokenVerdict:
    public = {kid: keys[kid].public_key() for kid in published} if keys is not None else None
    return judge_token(value, IDENTITY, keys=public, now=NOW, margin=timedelta(hours=8))


def test_a_good_token_is_kept(keys: dict[str, rsa.RSAPrivateKey]) -> None:
    good = token(keys["1"])
    verdict = judged(good, keys)
    assert verdict.good
    assert verdict.expires_at == NOW + timedelta(hours=20)
    # Kuma's own issuer writes an unset Workload as "": the same identity
    assert judged(token(keys["2"], kid="2", Workload=""), keys).good


@pytest.mark.parametrize(
    ("make", "stale"),
    [
        (lambda k: None, Staleness.MISSING),
        (lambda k: "", Staleness.MISSING),
        (lambda k: 42, Staleness.MISSING),
        (lambda k: "not-a-token", Staleness.MALFORMED),
        (lambda k: token(k["1"], kid="7"), Staleness.UNKNOWN_KEY),
        (lambda k: token(k["2"], kid="1"), Staleness.SIGNATURE),
        (lambda k: token(k["1"], kid="01"), Staleness.KID),
        (lambda k: token(k["1"], expires_in=timedelta(seconds=-1)), Staleness.EXPIRED),
        (lambda k: token(k["1"], expires_in=timedelta(hours=7, minutes=59)), Staleness.EXPIRING),
        (lambda k: token(k["1"], nbf=int((NOW + timedelta(minutes=1)).timestamp())), Staleness.NOT_YET_VALID),
        (lambda k: token(k["1"], Mesh="payments"), Staleness.OTHER_IDENTITY),
        (lambda k: token(k["1"], Tags={"kuma.io/service": ["other"]}), Staleness.OTHER_IDENTITY),
        (lambda k: token(k["1"], Tags={}), Staleness.OTHER_IDENTITY),  # any service: more than asked
        (lambda k: token(k["1"], Name="backend-01"), Staleness.OTHER_IDENTITY),
        (lambda k: token(k["1"], Workload="w"), Staleness.OTHER_IDENTITY),
        (lambda k: token(k["1"], Type="ingress"), Staleness.OTHER_IDENTITY),
        (lambda k: token(k["1"], Tags="backend"), Staleness.MALFORMED),
    ],
)
def test_a_token_no_longer_good_is_named_for_why(
    make: Any, stale: Staleness, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    assert judged(make(keys), keys).stale is stale


def test_a_key_no_longer_published_makes_its_tokens_stale(keys: dict[str, rsa.RSAPrivateKey]) -> None:
    signed_by_1 = token(keys["1"])
    assert judged(signed_by_1, keys, published=("1", "2")).good
    assert judged(signed_by_1, keys, published=("2",)).stale is Staleness.UNKNOWN_KEY


def test_without_the_issuers_keys_everything_but_the_signature_is_judged(
    keys: dict[str, rsa.RSAPrivateKey],
) -> None:
    # A control plane's token: its key is the control plane's own
    assert judged(token(keys["1"], kid="9"), None).good
    assert judged(token(keys["1"], expires_in=timedelta(hours=1)), None).stale is Staleness.EXPIRING
    assert judged(token(keys["1"], Mesh="other"), None).stale is Staleness.OTHER_IDENTITY
    assert judged("x.y.z", None).stale is Staleness.MALFORMED


def test_revocation_is_applied_to_a_token_good_otherwise() -> None:
    good = TokenVerdict(None, "jti-1", NOW)
    assert good.revoked_if({"jti-2"}).good
    assert good.revoked_if({"jti-1"}).stale is Staleness.REVOKED
    stale = TokenVerdict(Staleness.EXPIRED, "jti-1", NOW)
    assert stale.revoked_if({"jti-1"}).stale is Staleness.EXPIRED


# --- the secret's document -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{}", {}),
        ('{"token": "a", "owner": "x"}', {"token": "a", "owner": "x"}),
        ("[]", None),
        ('"a string"', None),
        ("not json", None),
        ('{"token": "a", "token": "b"}', None),  # duplicate keys: two readers could disagree
        ("", None),
        (None, None),
    ],
)
def test_only_a_json_object_is_a_document_the_provisioner_rewrites(text: str | None, expected: Any) -> None:
    assert parse_document(text) == expected


def version(document: dict[str, Any] | None, version_id: str = "v1") -> SecretVersion:
    arn = "arn:aws:secretsmanager:us-east-1:111111111111:secret:kuma-iam/dataplane-tokens/backend-AbCdEf"
    return SecretVersion("kuma-iam/dataplane-tokens/backend", arn, version_id, document)


def test_a_new_value_keeps_every_other_key_in_its_order() -> None:
    current = version({"owner": "team", "token": "old", "nested": {"a": [1]}})
    assert json.loads(current.with_token("new")) == {"owner": "team", "token": "new", "nested": {"a": [1]}}
    assert list(json.loads(current.with_token("new"))) == ["owner", "token", "nested"]
    assert list(json.loads(version({"owner": "team"}).with_token("new"))) == ["owner", "token"]


def test_the_version_that_replaces_another_is_named_after_it() -> None:
    # Every racer that read v1 names its put alike; a later refresh (of v2) names another
    token_v1 = version({}).refresh_request_token()
    assert token_v1 == version({"other": 1}).refresh_request_token()
    assert token_v1 != version({}, "v2").refresh_request_token()
    assert 32 <= len(token_v1) <= 64  # PutSecretValue's ClientRequestToken bounds
    assert str(uuid.UUID(token_v1)) == token_v1


# --- clusters ----------------------------------------------------------------------------------------------


def test_clusters_are_names_or_arns_each_once() -> None:
    assert parse_clusters(f" mesh , {CLUSTER},mesh,, ") == ("mesh", CLUSTER)
    assert parse_clusters("") == ()
    with pytest.raises(ValueError, match="neither an ECS cluster name nor a cluster ARN"):
        parse_clusters("mesh,arn:aws:ecs:us-east-1:111111111111:service/mesh/x")


def test_a_name_is_the_cluster_of_the_functions_account_and_region_and_only_that_arn_is_served() -> None:
    served = ServedClusters.resolve(("mesh", "batch"), partition="aws", region="us-east-1", account=ACCOUNT)
    assert served.serves(CLUSTER)
    assert not served.serves(CLUSTER + "-2")  # a namesake prefix
    assert not served.serves("arn:aws:ecs:us-east-1:222222222222:cluster/mesh")  # another account's
    assert not served.serves("arn:aws:ecs:eu-west-1:111111111111:cluster/mesh")  # another region's
    assert not served.serves("mesh")
    with pytest.raises(ValueError, match="not in this function's account"):
        ServedClusters.resolve(
            ("arn:aws:ecs:us-east-1:222222222222:cluster/mesh",),
            partition="aws",
            region="us-east-1",
            account=ACCOUNT,
        )


# --- the summary -------------------------------------------------------------------------------------------


def test_the_summary_is_the_documented_shape_and_cut_to_size() -> None:
    summary = ProvisioningSummary(
        tasks=3,
        issued=[Issued("backend", "default", "kuma-iam/dataplane-tokens/backend", "j-1", NOW)],
        skipped=[Skipped(f"{TASK}{n}", SkipReason.UNTAGGED) for n in range(2)],
    )
    assert summary.wire() == {
        "tasks": 3,
        "issued": [
            {
                "service": "backend",
                "mesh": "default",
                "secret": "kuma-iam/dataplane-tokens/backend",
                "jti": "j-1",
                "expiresAt": "2026-03-01T12:00:00Z",
            }
        ],
        "skipped": [{"task": f"{TASK}0", "reason": "untagged"}, {"task": f"{TASK}1", "reason": "untagged"}],
    }
    many = ProvisioningSummary(
        tasks=10_000, skipped=[Skipped(f"{TASK}{n}", SkipReason.UNTAGGED) for n in range(10_000)]
    )
    cut = many.wire(max_bytes=20_000)
    assert len(json.dumps(cut)) <= 20_000
    assert len(cut["skipped"]) + cut["omittedSkipped"] == 10_000
