"""Every STS endpoint real sidecars sign for, end to end on the embedded AWS: FIPS, dual-stack and both, in
the commercial partition and in GovCloud (a verifier deployed there takes its partition from its region).

Tokens are signed by a real botocore STS client set up as AWS_USE_FIPS_ENDPOINT / AWS_USE_DUALSTACK_ENDPOINT
set it up (support.botocore_tokens), with credentials moto issued; moto checks each signature against the
variant host it was signed for, which the verifier must forward unchanged. A recording proxy in front of moto
shows where each token went.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from kuma_iam.identity.token import encode_compact, encode_vault
from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.seed import HOME_ACCOUNT, DemoWorld
from support.botocore_tokens import botocore_signed
from support.fake_aws import FakeAws
from support.verifier_harness import Verifier

pytestmark = pytest.mark.integration

VARIANTS = [
    pytest.param(True, False, id="fips"),
    pytest.param(False, True, id="dualstack"),
    pytest.param(True, True, id="fips-dualstack"),
    pytest.param(False, False, id="regional"),
]
BACKEND_CLAIM = {"mesh": "default", "name": "backend-01", "tags": {"kuma.io/service": ["backend"]}}


def forwarded_hosts(proxy: FakeAws) -> list[str]:
    """Where the forwarded tokens went: the Host of each GetCallerIdentity addressed to an STS host."""
    return [r.host for r in proxy.requests if r.action == "GetCallerIdentity" and r.host.startswith("sts")]


# --- the commercial partition -------------------------------------------------------------------------------


# Both encodings of every region and variant are checked without the network in tests/unit/test_sts_endpoints.
@pytest.mark.parametrize(("region", "encoding"), [("us-east-1", "compact"), ("eu-west-1", "vault")])
@pytest.mark.parametrize(("fips", "dualstack"), VARIANTS)
def test_token_signed_for_a_variant_is_allowed_and_forwarded_to_that_variant(
    fips: bool,
    dualstack: bool,
    region: str,
    encoding: str,
    verify: Verifier,
    reconfigure: Callable[..., None],
    aws_proxy: FakeAws,
    demo_world: DemoWorld,
    credentials_for: Callable[..., dict[str, str]],
    server_id: str,
) -> None:
    # Given a sidecar whose SDK is set to this endpoint variant, signing with its task role's credentials
    reconfigure(AWS_ENDPOINT_URL_STS=aws_proxy.url, AWS_ENDPOINT_URL_IAM=aws_proxy.url)
    credentials = credentials_for(demo_world.role_arn(HOME_ACCOUNT, "backend-task"))
    signed = botocore_signed(credentials, server_id=server_id, region=region, fips=fips, dualstack=dualstack)
    token = encode_compact(signed) if encoding == "compact" else encode_vault(signed)

    # When the verifier decides on it
    answer = verify(token, BACKEND_CLAIM)

    # Then it is allowed as its role, having gone to the very host it was signed for (moto checked the
    # signature against it)
    assert answer.body.get("allowed") is True, answer.body
    assert answer.body["identity"]["roleName"] == "backend-task"
    assert forwarded_hosts(aws_proxy) == [urlsplit(signed.url).hostname]


# --- GovCloud: a verifier deployed in us-gov-west-1 ---------------------------------------------------------

GOV_REGION = "us-gov-west-1"
GOV_PARTITION = "aws-us-gov"


@dataclass(frozen=True)
class GovCloudWorld:
    verifier: dict[str, str]
    ecs_agent: dict[str, str]
    role_arn: str


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _user(iam: Any, name: str, *statements: dict[str, Any]) -> dict[str, str]:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="kuma-iam-test", PolicyDocument=_policy(*statements))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


@pytest.fixture(scope="module")
def govcloud(embedded_aws: EmbeddedAws, demo_world: DemoWorld) -> GovCloudWorld:
    """The home account's GovCloud side on the embedded AWS (moto keeps each partition apart): the verifier's
    user, an ECS agent, and a backend task role, seeded while the signature checks are paused."""
    with embedded_aws.signature_checks_paused():
        iam = embedded_aws.client_in_account("iam", HOME_ACCOUNT, region=GOV_REGION)
        verifier = _user(
            iam,
            "kuma-iam-verifier",
            {"Effect": "Allow", "Action": ["iam:GetRole", "sts:GetCallerIdentity"], "Resource": "*"},
        )
        agent = _user(iam, "ecs-agent", {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"})
        trust = {
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Principal": {"AWS": f"arn:{GOV_PARTITION}:iam::{HOME_ACCOUNT}:user/ecs-agent"},
        }
        role = iam.create_role(
            RoleName="backend-task",
            Path="/ecs/",
            AssumeRolePolicyDocument=_policy(trust),
            Tags=[
                {"Key": "kuma.io/type", "Value": "dataplane"},
                {"Key": "kuma.io/mesh", "Value": "default"},
                {"Key": "kuma.io/service", "Value": "backend"},
            ],
        )["Role"]
    return GovCloudWorld(verifier, agent, role["Arn"])


@pytest.fixture
def govcloud_verifier(
    verify: Verifier,
    reconfigure: Callable[..., None],
    govcloud: GovCloudWorld,
    aws_proxy: FakeAws,
) -> Verifier:
    """The verifier as deployed in us-gov-west-1: its region, its own GovCloud credentials."""
    reconfigure(
        AWS_REGION=GOV_REGION,
        AWS_DEFAULT_REGION=GOV_REGION,
        KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS=HOME_ACCOUNT,
        AWS_ENDPOINT_URL_STS=aws_proxy.url,
        AWS_ENDPOINT_URL_IAM=aws_proxy.url,
        **govcloud.verifier,
    )
    return verify


def gov_task_credentials(world: DemoWorld, govcloud: GovCloudWorld) -> dict[str, str]:
    sts = boto3.client(
        "sts",
        region_name=GOV_REGION,
        endpoint_url=world.endpoint_url,
        aws_access_key_id=govcloud.ecs_agent["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=govcloud.ecs_agent["AWS_SECRET_ACCESS_KEY"],
    )
    issued = sts.assume_role(RoleArn=govcloud.role_arn, RoleSessionName="ecs-task")["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": issued["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": issued["SecretAccessKey"],
        "AWS_SESSION_TOKEN": issued["SessionToken"],
    }


@pytest.mark.parametrize(("fips", "dualstack"), VARIANTS)
def test_govcloud_verifier_allows_its_partitions_tokens_in_every_variant(
    fips: bool,
    dualstack: bool,
    govcloud_verifier: Verifier,
    govcloud: GovCloudWorld,
    aws_proxy: FakeAws,
    demo_world: DemoWorld,
    server_id: str,
) -> None:
    # Given a GovCloud task's token, signed by botocore set to this variant
    credentials = gov_task_credentials(demo_world, govcloud)
    signed = botocore_signed(
        credentials, server_id=server_id, region=GOV_REGION, fips=fips, dualstack=dualstack
    )

    # When the verifier deployed in us-gov-west-1 decides on it
    answer = govcloud_verifier(encode_compact(signed), BACKEND_CLAIM)

    # Then it is allowed as the GovCloud role, with the partition in every ARN, forwarded to the signed host
    assert answer.body.get("allowed") is True, answer.body
    identity = answer.body["identity"]
    assert identity["arn"] == f"arn:{GOV_PARTITION}:iam::{HOME_ACCOUNT}:role/ecs/backend-task"
    assert (
        identity["sessionArn"]
        == f"arn:{GOV_PARTITION}:sts::{HOME_ACCOUNT}:assumed-role/backend-task/ecs-task"
    )
    assert forwarded_hosts(aws_proxy) == [urlsplit(signed.url).hostname]


@pytest.mark.parametrize(("fips", "dualstack"), VARIANTS)
def test_govcloud_verifier_refuses_a_commercial_token_before_the_network(
    fips: bool,
    dualstack: bool,
    govcloud_verifier: Verifier,
    aws_proxy: FakeAws,
    demo_world: DemoWorld,
    credentials_for: Callable[..., dict[str, str]],
    server_id: str,
) -> None:
    credentials = credentials_for(demo_world.role_arn(HOME_ACCOUNT, "backend-task"))
    signed = botocore_signed(
        credentials, server_id=server_id, region="us-east-1", fips=fips, dualstack=dualstack
    )

    answer = govcloud_verifier(encode_compact(signed), BACKEND_CLAIM)

    assert (answer.status, answer.reason) == (400, "invalid_request")
    assert "another partition than aws-us-gov" in answer.body["message"]
    assert forwarded_hosts(aws_proxy) == []
