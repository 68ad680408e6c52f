"""template.yaml's token provisioner, held to least privilege as IAM would evaluate its role
(support/iam_policy.py on the deployment support/cfn_template.py resolves): the served clusters' tasks only
(ListTasks by the cluster condition, DescribeTasks by task and cluster), its secrets' prefix only, read and
put and nothing else, the signer it is configured with and no other; its rules limited to the served
clusters and off without them; its environment exactly what TokenProvisionerSettings reads."""

from __future__ import annotations

from typing import Any

import pytest

from kuma_iam.config import TokenProvisionerSettings
from support.cfn_template import Template, deploy
from support.iam_policy import Decision, Request, decide, statements_of
from support.project_files import REPO

ACCOUNT = "111122223333"
REGION = "us-east-1"
MESH = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/mesh"
EDGE = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/edge"
OTHER = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/batch"
SECRETS = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret"
CP_TOKEN = f"{SECRETS}:kuma-cp/admin-token-AbCdEf"
CP_CA = f"{SECRETS}:kuma-cp/ca-AbCdEf"
REQUIRED = {"AuthorizedAccountIds": ACCOUNT, "ServerId": "cp"}


def permissions(**parameters: str) -> list[Any]:
    deployment = deploy(
        REPO / "template.yaml",
        REQUIRED | {"TokenProvisionerClusters": f"{MESH},{EDGE}"} | parameters,
        account=ACCOUNT,
        region=REGION,
        stack_name="kuma-iam",
        only=["TokenProvisionerFunctionRole"],
    )
    return [
        statement
        for policy in deployment.properties("TokenProvisionerFunctionRole")["Policies"]
        for statement in statements_of(policy["PolicyDocument"])
    ]


def allowed(statements: list[Any], action: str, resource: str = "*", **context: str) -> bool:
    return decide(statements, Request(action, resource, context)) is Decision.ALLOW


@pytest.fixture(scope="module")
def with_keys() -> list[Any]:
    return permissions()


@pytest.fixture(scope="module")
def with_control_plane() -> list[Any]:
    return permissions(
        TokenSigner="control-plane",
        ControlPlaneUrl="https://kuma-cp:5682",
        ControlPlaneTokenSecretArn=CP_TOKEN,
        ControlPlaneCaSecretArn=CP_CA,
    )


def test_tasks_of_the_served_clusters_only(with_keys: list[Any]) -> None:
    # ListTasks: authorized on container instances (Fargate tasks have none), so the cluster condition decides
    for cluster in (MESH, EDGE):
        assert allowed(with_keys, "ecs:ListTasks", "*", **{"ecs:cluster": cluster})
        task = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster.rsplit('/', 1)[1]}/0a1b"
        assert allowed(with_keys, "ecs:DescribeTasks", task, **{"ecs:cluster": cluster})
    assert not allowed(with_keys, "ecs:ListTasks", "*", **{"ecs:cluster": OTHER})
    assert not allowed(with_keys, "ecs:ListTasks", "*")  # no cluster in the context: no
    other_task = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/batch/0a1b"
    assert not allowed(with_keys, "ecs:DescribeTasks", other_task, **{"ecs:cluster": OTHER})
    foreign_task = f"arn:aws:ecs:{REGION}:999999999999:task/mesh/0a1b"
    assert not allowed(with_keys, "ecs:DescribeTasks", foreign_task, **{"ecs:cluster": MESH})
    # Nothing that changes ECS
    for action in ("ecs:RunTask", "ecs:StopTask", "ecs:UpdateService", "ecs:TagResource", "ecs:ListClusters"):
        assert not allowed(with_keys, action, "*", **{"ecs:cluster": MESH})


def test_no_cluster_no_ecs_listing_at_all() -> None:
    statements = permissions(TokenProvisionerClusters="")
    assert not allowed(statements, "ecs:ListTasks", "*", **{"ecs:cluster": MESH})
    assert not allowed(statements, "ecs:DescribeTasks", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/mesh/1")


def test_the_services_secrets_read_and_put_nothing_else(with_keys: list[Any]) -> None:
    ours = f"{SECRETS}:kuma-iam/dataplane-tokens/backend-AbCdEf"
    assert allowed(with_keys, "secretsmanager:GetSecretValue", ours)
    assert allowed(with_keys, "secretsmanager:PutSecretValue", ours)
    for action in (
        "secretsmanager:CreateSecret",
        "secretsmanager:DeleteSecret",
        "secretsmanager:UpdateSecret",
        "secretsmanager:UpdateSecretVersionStage",
        "secretsmanager:RestoreSecret",
        "secretsmanager:PutResourcePolicy",
        "secretsmanager:ListSecrets",
    ):
        assert not allowed(with_keys, action, ours), action
    for elsewhere in (
        f"{SECRETS}:kuma-iam/dataplane-token-signing-key-1-AbCdEf",
        f"{SECRETS}:kuma-iam/dataplane-tokensXbackend-AbCdEf",
        f"{SECRETS}:prod/db-password-AbCdEf",
        f"arn:aws:secretsmanager:{REGION}:999999999999:secret:kuma-iam/dataplane-tokens/backend-AbCdEf",
    ):
        assert not allowed(with_keys, "secretsmanager:GetSecretValue", elsewhere), elsewhere
        assert not allowed(with_keys, "secretsmanager:PutSecretValue", elsewhere), elsewhere
    custom = permissions(TokenSecretPrefix="mesh/tokens")
    assert allowed(custom, "secretsmanager:PutSecretValue", f"{SECRETS}:mesh/tokens/backend-AbCdEf")
    assert not allowed(custom, "secretsmanager:PutSecretValue", ours)


def test_signing_keys_sign_raw_rs256_only_and_no_control_plane_secret(with_keys: list[Any]) -> None:
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/kuma-iam-DataplaneTokenSigningKey"
    raw = {"kms:SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256", "kms:MessageType": "RAW"}
    assert allowed(with_keys, "kms:Sign", key, **raw)
    assert allowed(with_keys, "kms:GetPublicKey", key)
    assert not allowed(with_keys, "kms:Sign", key, **(raw | {"kms:MessageType": "DIGEST"}))
    assert not allowed(with_keys, "kms:Sign", key, **(raw | {"kms:SigningAlgorithm": "RSASSA_PSS_SHA_256"}))
    for action in ("kms:Decrypt", "kms:Verify", "kms:CreateGrant", "kms:ScheduleKeyDeletion"):
        assert not allowed(with_keys, action, key)
    assert not allowed(with_keys, "secretsmanager:GetSecretValue", CP_TOKEN)


def test_operator_kms_keys_sign_raw_rs256_only_as_the_stacks_own() -> None:
    # Given operator keys beside the stack's (AdditionalSigningKmsKeyArns)
    operator = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    statements = permissions(AdditionalSigningKmsKeyArns=operator)
    raw = {"kms:SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256", "kms:MessageType": "RAW"}

    # Then they sign RS256 over raw messages and publish their public key, and nothing else: such a key may
    # serve other signers, whose algorithms and digests are not ours to use
    assert allowed(statements, "kms:Sign", operator, **raw)
    assert allowed(statements, "kms:GetPublicKey", operator)
    assert not allowed(statements, "kms:Sign", operator, **(raw | {"kms:MessageType": "DIGEST"}))
    assert not allowed(
        statements, "kms:Sign", operator, **(raw | {"kms:SigningAlgorithm": "RSASSA_PSS_SHA_256"})
    )
    assert not allowed(statements, "kms:Sign", operator)  # no algorithm in the request: no


def test_finding_events_only_of_the_findings_source_and_type(with_keys: list[Any]) -> None:
    bus = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"
    ours = {"events:source": "kuma-iam.compliance", "events:detail-type": "Kuma IAM Compliance Finding"}
    assert allowed(with_keys, "events:PutEvents", bus, **ours)
    assert not allowed(with_keys, "events:PutEvents", bus, **(ours | {"events:source": "aws.ecs"}))
    assert not allowed(
        with_keys, "events:PutEvents", bus, **(ours | {"events:detail-type": "ECS Task State Change"})
    )
    assert not allowed(with_keys, "events:PutEvents", bus)


def test_the_control_plane_signer_reads_its_two_secrets_and_signs_nothing(
    with_control_plane: list[Any],
) -> None:
    assert allowed(with_control_plane, "secretsmanager:GetSecretValue", CP_TOKEN)
    assert allowed(with_control_plane, "secretsmanager:GetSecretValue", CP_CA)
    assert not allowed(with_control_plane, "secretsmanager:PutSecretValue", CP_TOKEN)
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/kuma-iam-DataplaneTokenSigningKey"
    raw = {"kms:SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256", "kms:MessageType": "RAW"}
    assert not allowed(with_control_plane, "kms:Sign", key, **raw)
    assert not allowed(with_control_plane, "kms:GetPublicKey", key)


def test_task_roles_are_read_at_home_and_revocations_through_the_scope_index(with_keys: list[Any]) -> None:
    assert allowed(with_keys, "iam:GetRole", f"arn:aws:iam::{ACCOUNT}:role/ecs/backend-task")
    assert not allowed(with_keys, "iam:GetRole", "arn:aws:iam::999999999999:role/backend-task")
    assert not allowed(with_keys, "sts:AssumeRole", "arn:aws:iam::999999999999:role/kuma-iam-reader")
    for action in ("iam:TagRole", "iam:UntagRole", "iam:PassRole", "iam:UpdateAssumeRolePolicy"):
        assert not allowed(with_keys, action, f"arn:aws:iam::{ACCOUNT}:role/backend-task")
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/kuma-iam-RevocationTable"
    assert allowed(with_keys, "dynamodb:Query", table)
    assert allowed(with_keys, "dynamodb:Query", f"{table}/index/scope-index")
    assert not allowed(with_keys, "dynamodb:PutItem", table)


def test_the_rules_serve_the_clusters_first_states_only_and_are_off_without_clusters() -> None:
    on = Template.load(TokenProvisionerClusters=f"{MESH},{EDGE}")
    events = on.properties("TokenProvisionerFunction")["Events"]
    starts = events["TaskStarts"]["Properties"]
    assert starts["State"] == "ENABLED"
    assert starts["Pattern"] == {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {
            "clusterArn": [MESH, EDGE],
            "desiredStatus": ["RUNNING"],
            "lastStatus": ["PROVISIONING", "PENDING"],
        },
    }
    assert events["Sweep"]["Properties"]["State"] == "ENABLED"
    off = Template.load().properties("TokenProvisionerFunction")["Events"]
    assert off["TaskStarts"]["Properties"]["State"] == "DISABLED"
    assert off["Sweep"]["Properties"]["State"] == "DISABLED"


@pytest.mark.parametrize("signer", ["signing-keys", "control-plane"])
def test_the_environment_is_what_the_settings_read(signer: str) -> None:
    # Given the function's environment as deployed with either signer
    environment = Template.load(TokenSigner=signer).function_environment("TokenProvisionerFunction")
    read = {
        str(field.validation_alias)
        for model in (TokenProvisionerSettings, *_nested(TokenProvisionerSettings))
        for field in model.model_fields.values()
        if isinstance(field.validation_alias, str)
    }
    # Then every variable the template sets is one the settings read (none is silently ignored)
    ignored = {name for name in environment if name.startswith(("KUMA_IAM_", "KMESH_")) and name not in read}
    assert not ignored, ignored
    assert environment["KUMA_IAM_TOKEN_SIGNER"] == signer
    assert (environment["KUMA_IAM_SIGNING_KEYS"] == "") is (signer == "control-plane")


def _nested(model: type[TokenProvisionerSettings]) -> list[Any]:
    from typing import get_args

    from pydantic import BaseModel

    return [
        kind
        for field in model.model_fields.values()
        for kind in get_args(field.annotation)
        if isinstance(kind, type) and issubclass(kind, BaseModel)
    ]
