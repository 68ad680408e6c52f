"""The embedded AWS and its demo world, with moto checking signatures and IAM policies as AWS would."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any, cast
from unittest import mock
from xml.etree import ElementTree

import pytest
import urllib3
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.exceptions import ClientError

from kuma_iam.identity.checks import GET_CALLER_IDENTITY
from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.gateway import LocalGateway
from kuma_iam_cli.local.seed import (
    DEMO_TASK_ROLES,
    HOME_ACCOUNT,
    OUTSIDER_ACCOUNT,
    PARTNER_ACCOUNT,
    READER_ROLE_NAME,
    DemoWorld,
    TaskRoleSpec,
    control_plane_caller,
    recreate_role,
    task_credentials,
    verifier_environment,
)
from kuma_iam_cli.signer import sign_api_call, sign_identity_request
from support.aws_clients import client_as

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_sts import STSClient

pytestmark = pytest.mark.integration

STS_NAMESPACE = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/"}


def error_code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response.get("Error", {}).get("Code"))


def tags_of(role: Any) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in role.get("Tags", [])}


def signed_identity_headers(credentials: dict[str, str]) -> dict[str, str]:
    """Headers of a GetCallerIdentity signed by our signer for the real STS host, as a token carries them."""
    signed = sign_identity_request(
        ReadOnlyCredentials(
            credentials["AWS_ACCESS_KEY_ID"],
            credentials["AWS_SECRET_ACCESS_KEY"],
            credentials["AWS_SESSION_TOKEN"],
        ),
        server_id="kuma-demo",
        region="us-east-1",
    )
    return dict(signed.headers)


def post_to_moto(world: DemoWorld, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
    return urllib3.request(
        "POST", world.endpoint_url + "/", body=GET_CALLER_IDENTITY.encode(), headers=headers
    )


class TestSignatureChecks:
    def test_unknown_key_is_rejected(self, demo_world: DemoWorld) -> None:
        sts = client_as(
            demo_world, "sts", {"AWS_ACCESS_KEY_ID": "AKIAUNKNOWN000000000", "AWS_SECRET_ACCESS_KEY": "x"}
        )

        with pytest.raises(ClientError) as error:
            sts.get_caller_identity()

        assert error_code(error) == "InvalidClientTokenId"

    def test_wrong_secret_is_rejected(self, demo_world: DemoWorld) -> None:
        wrong = {"AWS_ACCESS_KEY_ID": demo_world.verifier.access_key_id, "AWS_SECRET_ACCESS_KEY": "guess"}

        with pytest.raises(ClientError) as error:
            client_as(demo_world, "sts", wrong).get_caller_identity()

        assert error_code(error) == "SignatureDoesNotMatch"

    def test_seeding_client_no_longer_works(self, embedded_aws: EmbeddedAws, demo_world: DemoWorld) -> None:
        iam = cast("IAMClient", embedded_aws.client_in_account("iam", HOME_ACCOUNT))

        with pytest.raises(ClientError) as error:
            iam.list_roles()

        assert error_code(error) == "InvalidClientTokenId"


class TestTaskRoles:
    @pytest.mark.parametrize("spec", DEMO_TASK_ROLES, ids=lambda spec: f"{spec.account}-{spec.name}")
    def test_ecs_agent_hands_out_task_role_credentials(
        self, demo_world: DemoWorld, spec: TaskRoleSpec
    ) -> None:
        credentials = task_credentials(demo_world, spec.account, spec.name)

        identity = cast("STSClient", client_as(demo_world, "sts", credentials)).get_caller_identity()

        assert identity["Arn"] == f"arn:aws:sts::{spec.account}:assumed-role/{spec.name}/ecs-task"
        assert identity["Account"] == spec.account
        admin = cast("IAMClient", client_as(demo_world, "iam", demo_world.admins[spec.account]))
        role = admin.get_role(RoleName=spec.name)["Role"]
        assert identity["UserId"] == f"{role['RoleId']}:ecs-task"
        assert role["Arn"] == demo_world.role_arn(spec.account, spec.name)
        assert tags_of(role) == dict(spec.tags)

    def test_session_name_is_the_callers_choice(self, demo_world: DemoWorld) -> None:
        credentials = task_credentials(demo_world, HOME_ACCOUNT, "frontend-task", session_name="i-am-backend")

        identity = cast("STSClient", client_as(demo_world, "sts", credentials)).get_caller_identity()

        assert identity["Arn"].endswith(":assumed-role/frontend-task/i-am-backend")

    def test_role_arn_from_iam_carries_its_path(self, demo_world: DemoWorld) -> None:
        assert demo_world.role_arn(HOME_ACCOUNT, "backend-task") == (
            f"arn:aws:iam::{HOME_ACCOUNT}:role/ecs/backend-task"
        )
        credentials = task_credentials(demo_world, HOME_ACCOUNT, "backend-task")
        identity = cast("STSClient", client_as(demo_world, "sts", credentials)).get_caller_identity()
        # STS drops the path from the assumed-role ARN: only IAM knows it.
        assert identity["Arn"] == f"arn:aws:sts::{HOME_ACCOUNT}:assumed-role/backend-task/ecs-task"

    def test_recreated_role_gets_a_new_role_id(self, demo_world: DemoWorld) -> None:
        admin = cast("IAMClient", client_as(demo_world, "iam", demo_world.admins[HOME_ACCOUNT]))
        before = admin.get_role(RoleName="worker-task")["Role"]

        new_role_id = recreate_role(demo_world, HOME_ACCOUNT, "worker-task")

        after = admin.get_role(RoleName="worker-task")["Role"]
        assert new_role_id == after["RoleId"] != before["RoleId"]
        assert (after["Arn"], tags_of(after)) == (before["Arn"], tags_of(before))
        assert admin.list_role_policies(RoleName="worker-task")["PolicyNames"] == ["kuma-iam-demo"]
        fresh = task_credentials(demo_world, HOME_ACCOUNT, "worker-task")
        identity = cast("STSClient", client_as(demo_world, "sts", fresh)).get_caller_identity()
        assert identity["UserId"] == f"{new_role_id}:ecs-task"


class TestVerifierUser:
    def test_reads_roles_in_its_own_account(self, demo_world: DemoWorld) -> None:
        iam = cast("IAMClient", client_as(demo_world, "iam", demo_world.verifier))

        role = iam.get_role(RoleName="backend-task")["Role"]

        assert role["Arn"] == f"arn:aws:iam::{HOME_ACCOUNT}:role/ecs/backend-task"
        assert tags_of(role) == {
            "kuma.io/type": "dataplane",
            "kuma.io/mesh": "default",
            "kuma.io/service": "backend",
        }
        assert iam.list_role_tags(RoleName="backend-task")["Tags"]

    def test_missing_role_is_no_such_entity(self, demo_world: DemoWorld) -> None:
        iam = cast("IAMClient", client_as(demo_world, "iam", demo_world.verifier))

        with pytest.raises(ClientError) as error:
            iam.get_role(RoleName="payments-task")  # it lives in the partner account

        assert error_code(error) == "NoSuchEntity"

    def test_reads_partner_roles_through_the_reader_role(self, demo_world: DemoWorld) -> None:
        sts = cast("STSClient", client_as(demo_world, "sts", demo_world.verifier))
        reader = sts.assume_role(
            RoleArn=demo_world.role_arn(PARTNER_ACCOUNT, READER_ROLE_NAME), RoleSessionName="kuma-iam"
        )["Credentials"]
        reader_credentials = {
            "AWS_ACCESS_KEY_ID": reader["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": reader["SecretAccessKey"],
            "AWS_SESSION_TOKEN": reader["SessionToken"],
        }
        iam = cast("IAMClient", client_as(demo_world, "iam", reader_credentials))

        role = iam.get_role(RoleName="payments-task")["Role"]

        assert role["Arn"] == f"arn:aws:iam::{PARTNER_ACCOUNT}:role/ecs/payments/payments-task"
        assert tags_of(role) == {
            "kuma.io/type": "dataplane",
            "kuma.io/mesh": "payments",
            "kuma.io/service": "payments",
        }
        with pytest.raises(ClientError) as error:
            iam.delete_role(RoleName="payments-task")
        assert error_code(error) == "AccessDenied"

    def test_may_not_assume_task_roles(self, demo_world: DemoWorld) -> None:
        sts = cast("STSClient", client_as(demo_world, "sts", demo_world.verifier))

        with pytest.raises(ClientError) as error:
            sts.assume_role(RoleArn=demo_world.role_arn(HOME_ACCOUNT, "backend-task"), RoleSessionName="x-x")

        assert error_code(error) == "AccessDenied"

    def test_may_put_replay_items_where_ci_user_may_not(self, demo_world: DemoWorld) -> None:
        admin = client_as(demo_world, "dynamodb", demo_world.admins[HOME_ACCOUNT])
        admin.create_table(
            TableName="kuma-iam-probe",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        item = {"pk": {"S": "signature"}}

        verifier = client_as(demo_world, "dynamodb", demo_world.verifier)
        verifier.put_item(TableName="kuma-iam-probe", Item=item)

        ci_user = client_as(demo_world, "dynamodb", demo_world.ci_user)
        with pytest.raises(ClientError) as error:
            ci_user.put_item(TableName="kuma-iam-probe", Item=item)
        # moto words a DynamoDB denial in IAM's XML, which botocore cannot read as DynamoDB JSON: AWS would
        # say AccessDeniedException, the embedded AWS says only HTTP 403.
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert error_code(error) in {"AccessDeniedException", "403"}


def test_ci_user_is_a_plain_iam_user(demo_world: DemoWorld) -> None:
    identity = cast("STSClient", client_as(demo_world, "sts", demo_world.ci_user)).get_caller_identity()

    assert identity["Arn"] == f"arn:aws:iam::{HOME_ACCOUNT}:user/ci-user"


class TestForwardedIdentityRequest:
    """A token's request is signed for the real STS host and replayed to the stand-in with that Host."""

    def test_moto_accepts_it_with_the_signed_host(self, demo_world: DemoWorld) -> None:
        credentials = task_credentials(demo_world, PARTNER_ACCOUNT, "payments-task")
        response = post_to_moto(demo_world, signed_identity_headers(credentials))

        assert response.status == 200
        answer = ElementTree.fromstring(response.data)  # noqa: S314 - the answer of our own moto
        arn = answer.find(".//sts:Arn", STS_NAMESPACE)
        assert arn is not None
        assert arn.text == f"arn:aws:sts::{PARTNER_ACCOUNT}:assumed-role/payments-task/ecs-task"

    def test_moto_rejects_it_under_another_host(self, demo_world: DemoWorld) -> None:
        credentials = task_credentials(demo_world, HOME_ACCOUNT, "backend-task")
        headers = signed_identity_headers(credentials)
        del headers["Host"]  # the HTTP client then names moto's own host

        response = post_to_moto(demo_world, headers)

        assert response.status == 403
        assert b"SignatureDoesNotMatch" in response.data

    def test_moto_rejects_a_changed_server_id(self, demo_world: DemoWorld) -> None:
        credentials = task_credentials(demo_world, HOME_ACCOUNT, "backend-task")
        headers = signed_identity_headers(credentials)

        response = post_to_moto(demo_world, {**headers, "X-Kuma-AWS-IAM-Server-ID": "another-cp"})

        assert response.status == 403

    def test_moto_does_not_check_the_signature_age(self, demo_world: DemoWorld) -> None:
        # AWS refuses a signature older than 15 minutes; moto does not: freshness is the verifier's own check.
        credentials = task_credentials(demo_world, HOME_ACCOUNT, "backend-task")
        long_ago = dt.datetime(2020, 1, 1)
        with mock.patch("botocore.auth.get_current_datetime", return_value=long_ago):
            headers = signed_identity_headers(credentials)

        response = post_to_moto(demo_world, headers)

        assert headers["X-Amz-Date"] == "20200101T000000Z"
        assert response.status == 200


def test_verifier_environment(demo_world: DemoWorld) -> None:
    environment = verifier_environment(demo_world, server_id="kuma-demo")

    assert environment["KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS"] == f"{HOME_ACCOUNT},{PARTNER_ACCOUNT}"
    assert OUTSIDER_ACCOUNT not in environment["KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS"]
    assert environment["AWS_ENDPOINT_URL_STS"] == demo_world.endpoint_url
    assert environment["AWS_ACCESS_KEY_ID"] == demo_world.verifier.access_key_id


def test_world_survives_json(demo_world: DemoWorld) -> None:
    assert DemoWorld.from_json(demo_world.to_json()) == demo_world
    assert demo_world.verifier.secret_access_key not in repr(demo_world)


def test_gateway_takes_calls_signed_by_the_control_plane(demo_world: DemoWorld) -> None:
    def whoami(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 200, "body": event["requestContext"]["authorizer"]["iam"]["userArn"]}

    with LocalGateway(
        {"POST /v1/verify": whoami}, [control_plane_caller(demo_world)], api_account_id=HOME_ACCOUNT
    ) as gateway:
        url = gateway.endpoint_url + "/v1/verify"
        control_plane = demo_world.control_plane
        headers = sign_api_call(
            Credentials(control_plane.access_key_id, control_plane.secret_access_key),
            url=url,
            body=b"{}",
            region="us-east-1",
        )

        signed = urllib3.request("POST", url, body=b"{}", headers=headers)
        unsigned = urllib3.request("POST", url, body=b"{}")
        too_big = urllib3.request("POST", url, body=b"x" * (1024 * 1024 + 1))

    assert (signed.status, signed.data.decode()) == (200, control_plane.arn)
    assert (unsigned.status, json.loads(unsigned.data)) == (403, {"message": "Forbidden"})
    assert too_big.status == 413


def test_only_one_embedded_aws_per_process(embedded_aws: EmbeddedAws) -> None:
    with pytest.raises(RuntimeError, match="already runs"), EmbeddedAws():
        pass
