"""VerifierSettings.from_env: parsed once, defaults that match the design, failures naming the variable."""

from __future__ import annotations

from typing import ClassVar

import pydantic
import pytest

from kuma_iam.config import VerifierSettings
from kuma_iam.errors import ConfigError
from kuma_iam.verify import verifier_from_env
from support.cfn_template import Template

ACCOUNTS = "KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS"
SERVER_ID = "KUMA_IAM_SERVER_ID"
MINIMAL = {ACCOUNTS: "111111111111", SERVER_ID: "cp-1"}


def settings(**env: str) -> VerifierSettings:
    return VerifierSettings.from_env({**MINIMAL, **env})


def test_minimal_environment_gets_the_documented_defaults() -> None:
    # Given only the two required variables
    # When the settings are parsed
    parsed = VerifierSettings.from_env(MINIMAL)
    # Then everything else takes its default
    assert parsed.authorized_account_ids == frozenset({"111111111111"})
    assert parsed.server_id == "cp-1"
    assert parsed.region == "us-east-1"
    assert (parsed.sts_endpoint_url, parsed.iam_endpoint_url, parsed.dynamodb_endpoint_url) == (
        None,
        None,
        None,
    )
    assert parsed.reader_role_name == "kuma-iam-reader"
    assert parsed.role_cache_ttl_seconds == 60.0
    assert parsed.max_token_age_seconds == 900
    assert parsed.max_clock_skew_seconds == 300
    assert parsed.upstream_timeout_seconds == 2.5
    assert parsed.replay_table_name is None


@pytest.mark.parametrize(
    ("raw", "accounts"),
    [
        ("111111111111", {"111111111111"}),
        ("111111111111,222222222222", {"111111111111", "222222222222"}),
        (" 111111111111 , 222222222222 ", {"111111111111", "222222222222"}),
        ("111111111111,,222222222222,", {"111111111111", "222222222222"}),
        ("111111111111,111111111111", {"111111111111"}),
        ("000000000000", {"000000000000"}),
    ],
    ids=["one", "two", "spaces", "empty-parts", "duplicate", "leading-zeros"],
)
def test_authorized_accounts_are_a_comma_list(raw: str, accounts: set[str]) -> None:
    assert settings(**{ACCOUNTS: raw}).authorized_account_ids == frozenset(accounts)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({ACCOUNTS: "12345"}, ACCOUNTS),
        ({ACCOUNTS: "1111111111111"}, ACCOUNTS),
        ({ACCOUNTS: "11111111111a"}, ACCOUNTS),
        ({ACCOUNTS: "111111111111 222222222222"}, ACCOUNTS),
        ({ACCOUNTS: "111111111111;222222222222"}, ACCOUNTS),
        ({ACCOUNTS: "arn:aws:iam::111111111111:root"}, ACCOUNTS),
        ({ACCOUNTS: ""}, ACCOUNTS),
        ({ACCOUNTS: " , "}, ACCOUNTS),
        ({SERVER_ID: ""}, SERVER_ID),
        ({SERVER_ID: "x" * 257}, SERVER_ID),
        ({"KUMA_IAM_MAX_TOKEN_AGE_SECONDS": "901"}, "KUMA_IAM_MAX_TOKEN_AGE_SECONDS"),
        ({"KUMA_IAM_MAX_TOKEN_AGE_SECONDS": "0"}, "KUMA_IAM_MAX_TOKEN_AGE_SECONDS"),
        ({"KUMA_IAM_MAX_TOKEN_AGE_SECONDS": "fifteen minutes"}, "KUMA_IAM_MAX_TOKEN_AGE_SECONDS"),
        ({"KUMA_IAM_MAX_CLOCK_SKEW_SECONDS": "-1"}, "KUMA_IAM_MAX_CLOCK_SKEW_SECONDS"),
        ({"KUMA_IAM_UPSTREAM_TIMEOUT_SECONDS": "0"}, "KUMA_IAM_UPSTREAM_TIMEOUT_SECONDS"),
        ({"KUMA_IAM_UPSTREAM_TIMEOUT_SECONDS": "3.5"}, "KUMA_IAM_UPSTREAM_TIMEOUT_SECONDS"),
        ({"KUMA_IAM_ROLE_CACHE_TTL_SECONDS": "3601"}, "KUMA_IAM_ROLE_CACHE_TTL_SECONDS"),
    ],
    ids=lambda value: value if isinstance(value, str) and value.isupper() else None,
)
def test_bad_value_fails_fast_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as failed:
        settings(**env)
    assert failed.value.message.startswith("invalid configuration: ")
    assert f"{named}: " in failed.value.message


def test_bad_account_id_is_quoted_so_the_operator_finds_it() -> None:
    with pytest.raises(ConfigError) as failed:
        settings(**{ACCOUNTS: "111111111111,12345"})
    # our own validator's words, without pydantic's "Value error, " before them (as http.py's answers)
    assert f"{ACCOUNTS}: '12345' is not a 12-digit AWS account id" in failed.value.message
    assert "Value error" not in failed.value.message


@pytest.mark.parametrize("missing", [ACCOUNTS, SERVER_ID])
def test_missing_required_variable_is_named(missing: str) -> None:
    env = {key: value for key, value in MINIMAL.items() if key != missing}
    with pytest.raises(ConfigError, match=f"{missing}: Field required"):
        VerifierSettings.from_env(env)


def test_every_bad_variable_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as failed:
        VerifierSettings.from_env({"KUMA_IAM_MAX_CLOCK_SKEW_SECONDS": "-1"})
    for name in (ACCOUNTS, SERVER_ID, "KUMA_IAM_MAX_CLOCK_SKEW_SECONDS"):
        assert f"{name}: " in failed.value.message


@pytest.mark.parametrize(
    ("variable", "attribute"),
    [
        ("AWS_ENDPOINT_URL_STS", "sts_endpoint_url"),
        ("AWS_ENDPOINT_URL_IAM", "iam_endpoint_url"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "dynamodb_endpoint_url"),
        ("KUMA_IAM_REPLAY_TABLE", "replay_table_name"),
    ],
)
def test_empty_optional_variable_is_treated_as_unset(variable: str, attribute: str) -> None:
    # SAM templates and `sam local` pass unset parameters as empty strings.
    assert getattr(settings(**{variable: ""}), attribute) is None


def test_endpoint_override_is_kept_verbatim() -> None:
    assert settings(AWS_ENDPOINT_URL_STS="http://127.0.0.1:5000").sts_endpoint_url == "http://127.0.0.1:5000"


@pytest.mark.parametrize(
    ("env", "region"),
    [
        ({"AWS_REGION": "eu-west-1"}, "eu-west-1"),
        ({"AWS_DEFAULT_REGION": "ap-south-1"}, "ap-south-1"),
        ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "ap-south-1"}, "eu-west-1"),
    ],
    ids=["aws-region", "default-region", "aws-region-wins"],
)
def test_region_comes_from_the_lambda_variables(env: dict[str, str], region: str) -> None:
    assert settings(**env).region == region


def test_empty_aws_region_is_treated_as_unset() -> None:
    assert settings(AWS_REGION="", AWS_DEFAULT_REGION="ap-south-1").region == "ap-south-1"


def test_unrelated_variables_are_ignored_and_never_echoed() -> None:
    # Given a Lambda environment with credentials in it and a bad setting
    env = {
        SERVER_ID: "cp-1",
        ACCOUNTS: "bad",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2VjEXAMPLE",
        "PATH": "/usr/bin",
    }
    # When parsing fails
    with pytest.raises(ConfigError) as failed:
        VerifierSettings.from_env(env)
    # Then only the bad variable is named, and no secret value is in the message
    assert "wJalrXUtnFEMI" not in failed.value.message
    assert "IQoJb3JpZ2lu" not in failed.value.message
    assert "AWS_SECRET_ACCESS_KEY" not in failed.value.message


def test_settings_are_frozen_once_parsed() -> None:
    parsed = settings()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        parsed.server_id = "other"


def test_home_account_is_optional_and_must_be_an_account_id() -> None:
    # Given the account the template passes, then a malformed one
    base = {"KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS": "111111111111", "KUMA_IAM_SERVER_ID": "cp"}

    # Then a valid id is kept, no id means "learn it from STS", and a bad id names the variable
    assert VerifierSettings.from_env(
        {**base, "KUMA_IAM_HOME_ACCOUNT_ID": "111111111111"}
    ).home_account_id == ("111111111111")
    assert VerifierSettings.from_env(base).home_account_id is None
    with pytest.raises(ConfigError, match="KUMA_IAM_HOME_ACCOUNT_ID"):
        VerifierSettings.from_env({**base, "KUMA_IAM_HOME_ACCOUNT_ID": "12345"})


@pytest.mark.parametrize("server_id", ["kuma demo", "kuma\tdemo", "x" * 257])
def test_server_id_must_be_printable_ascii_without_spaces(server_id: str) -> None:
    # SigV4 folds whitespace in header values, so "a b" and "a  b" would be one binding
    with pytest.raises(ConfigError, match="KUMA_IAM_SERVER_ID"):
        VerifierSettings.from_env(
            {"KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS": "111111111111", "KUMA_IAM_SERVER_ID": server_id}
        )


class TestEndpointOverridesInLambda:
    """A deployed function refuses the SDK's endpoint overrides; sam local, the local stack and tests may."""

    # What Lambda itself sets in every function's environment (sam local sets the same, plus AWS_SAM_LOCAL).
    LAMBDA_RUNTIME: ClassVar[dict[str, str]] = {
        "AWS_LAMBDA_FUNCTION_NAME": "kuma-iam-test-VerifierFunction-AbC123",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_REGION": "eu-west-1",
    }

    @staticmethod
    def deployed_environment() -> dict[str, str]:
        deployed = Template.load().function_environment("VerifierFunction")
        return {**deployed, **TestEndpointOverridesInLambda.LAMBDA_RUNTIME}

    @pytest.mark.parametrize(
        "override",
        ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL_DYNAMODB",
         "AWS_ENDPOINT_URL_KMS"],
    )  # fmt: skip
    def test_a_deployed_configuration_refuses_an_endpoint_override(self, override: str) -> None:
        # Given the verifier's environment as the template deploys it, in Lambda, plus one endpoint override
        # (botocore would honour any of them, whether the settings model reads it or not)
        environment = {**self.deployed_environment(), override: "https://sts.attacker.example"}

        # When the verifier is configured
        # Then it refuses, naming the variable, before any client exists
        with pytest.raises(ConfigError, match=override):
            verifier_from_env(environment)

    def test_the_deployed_configuration_itself_is_accepted(self) -> None:
        verifier_from_env(self.deployed_environment())

    def test_sam_local_may_point_the_sdk_at_a_stand_in(self) -> None:
        # Given the same environment as sam local gives a container (AWS_SAM_LOCAL=true)
        environment = {
            **self.deployed_environment(),
            "AWS_SAM_LOCAL": "true",
            "AWS_ENDPOINT_URL_STS": "http://host.docker.internal:5000",
        }
        # Then the override is taken
        assert VerifierSettings.from_env(environment).sts_endpoint_url == "http://host.docker.internal:5000"

    def test_outside_lambda_the_local_stack_may_override(self) -> None:
        assert (
            settings(AWS_ENDPOINT_URL_STS="http://127.0.0.1:5000").sts_endpoint_url == "http://127.0.0.1:5000"
        )

    def test_an_empty_override_is_no_override(self) -> None:
        verifier_from_env({**self.deployed_environment(), "AWS_ENDPOINT_URL_STS": ""})
