"""`kuma-iam sweep` as a user runs it on the embedded AWS: a table or JSON, exit 0/1/2, never a traceback."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from kuma_iam_cli.local.compliance_demo import HOME_ACCOUNT, PARTNER_ACCOUNT, ecs_trust
from kuma_iam_cli.local.seed import DemoWorld, compliance_environment
from support.aws_clients import ClientFactory
from support.cli_runs import CEILING_SECONDS, KUMA_IAM, isolated_environment
from support.fake_aws import Computed, FakeAws, PassThrough
from support.iam_listing import ListedRole, PagedRoles
from support.local_ports import refusing_port


def sweep(*args: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUMA_IAM, "sweep", *args],
        env=isolated_environment(**environment),
        capture_output=True,
        text=True,
        timeout=CEILING_SECONDS,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *named: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr + result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("kuma-iam: "), result.stderr
    for text in named:
        assert text in last, last


@pytest.fixture
def laptop(demo_world: DemoWorld) -> dict[str, str]:
    """An operator's shell: the compliance principal's keys and the embedded AWS's endpoints; no accounts."""
    environment = compliance_environment(demo_world)
    return {
        name: value
        for name, value in environment.items()
        if name.startswith("AWS_") or name == "KUMA_IAM_COMPLIANCE_ROLE_NAME"
    }


def test_findings_print_as_a_table_and_exit_1(laptop: dict[str, str], demo_world: DemoWorld) -> None:
    result = sweep(
        "--account", HOME_ACCOUNT, "--account", PARTNER_ACCOUNT, environment=laptop | {"COLUMNS": "200"}
    )
    assert result.returncode == 1, result.stderr
    for rule, role in (("kuma-type-invalid", "typo-task"), ("kuma-value-malformed", "ledger-task")):
        line = next(line for line in result.stdout.splitlines() if role in line)
        assert rule in line
    assert "orders-task" not in result.stdout
    # the progress bars went to stderr, one per account
    assert HOME_ACCOUNT in result.stderr
    assert PARTNER_ACCOUNT in result.stderr
    assert "Traceback" not in result.stderr


def test_json_is_the_function_summary(laptop: dict[str, str]) -> None:
    result = sweep("--json", "--account", PARTNER_ACCOUNT, environment=laptop)
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary) == {"evaluated", "findings", "remediations"}
    assert ("kuma-value-malformed", "ledger-task") in {
        (f["rule"], f["roleName"]) for f in summary["findings"]
    }
    assert summary["evaluated"] == 4


def test_own_account_by_default(laptop: dict[str, str]) -> None:
    summary = json.loads(sweep("--json", environment=laptop).stdout)
    assert {f["account"] for f in summary["findings"]} == {HOME_ACCOUNT}


def test_the_account_list_of_the_environment(laptop: dict[str, str], demo_world: DemoWorld) -> None:
    environment = laptop | {"KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS": ",".join(demo_world.authorized_accounts)}
    summary = json.loads(sweep("--json", environment=environment).stdout)
    assert {f["account"] for f in summary["findings"]} == {HOME_ACCOUNT, PARTNER_ACCOUNT}


def test_a_clean_account_exits_0(laptop: dict[str, str], demo_world: DemoWorld) -> None:
    # Given an account whose roles all comply (an IAM stand-in lists them; STS is moto)
    roles = [
        ListedRole(
            HOME_ACCOUNT,
            f"clean-{i}",
            {"kuma.io/type": "dataplane", "kuma.io/mesh": "default"},
            ecs_trust(HOME_ACCOUNT),
        )
        for i in range(5)
    ]
    with FakeAws(name="clean-iam") as iam:
        iam.script(then=Computed(PagedRoles(roles, PassThrough(demo_world.endpoint_url)).choose))
        result = sweep("--account", HOME_ACCOUNT, environment=laptop | {"AWS_ENDPOINT_URL_IAM": iam.url})
    assert result.returncode == 0, result.stderr
    assert "5 roles checked: no findings" in result.stdout


def test_enforce_removes_and_says_so(
    laptop: dict[str, str], make_role: Callable[..., str], admin_client: ClientFactory, demo_world: DemoWorld
) -> None:
    # Given a bad role in the partner account only we sweep through a stand-in listing just it
    make_role(PARTNER_ACCOUNT, "cli-enforced", {"kuma.io/type": "sidecar", "team": "x"})
    listed = [
        ListedRole(
            PARTNER_ACCOUNT,
            "cli-enforced",
            {"kuma.io/type": "sidecar", "team": "x"},
            ecs_trust(PARTNER_ACCOUNT),
        )
    ]
    with FakeAws(name="one-role-iam") as iam:
        iam.script(then=Computed(PagedRoles(listed, PassThrough(demo_world.endpoint_url)).choose))
        result = sweep(
            "--enforce",
            "--json",
            "--account",
            PARTNER_ACCOUNT,
            environment=laptop | {"AWS_ENDPOINT_URL_IAM": iam.url},
        )
    summary = json.loads(result.stdout)
    assert summary["remediations"] == [
        {"account": PARTNER_ACCOUNT, "roleName": "cli-enforced", "removedTags": ["kuma.io/type"]}
    ]
    role = admin_client(PARTNER_ACCOUNT, "iam").get_role(RoleName="cli-enforced")["Role"]
    assert {tag["Key"] for tag in role["Tags"]} == {"team"}


ERRORS: list[Any] = [
    pytest.param(["--account", "12"], {}, ["--account", "'12'", "12-digit"], id="bad-account"),
    pytest.param(
        [],
        {"KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS": "12"},
        ["KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS", "'12'"],
        id="bad-accounts-setting",
    ),
    pytest.param(
        ["--account", "333333333333"], {}, ["333333333333", "not every role"], id="unassumable-account"
    ),
    pytest.param(
        ["--compliance-role", "no/such"], {}, ["--compliance-role", "'no/such'"], id="bad-role-name"
    ),
    pytest.param(
        [],
        {"KUMA_IAM_COMPLIANCE_ROLE_NAME": "no/such"},
        ["KUMA_IAM_COMPLIANCE_ROLE_NAME"],
        id="bad-role-setting",
    ),
    pytest.param(
        [], {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}, ["credentials"], id="no-credentials"
    ),
    pytest.param([], {"AWS_SECRET_ACCESS_KEY": "wrong"}, [], id="wrong-secret"),
    pytest.param(
        ["--account", HOME_ACCOUNT], {"AWS_ENDPOINT_URL_IAM": "closed"}, [HOME_ACCOUNT], id="iam-unreachable"
    ),
    pytest.param(
        [],
        {"KUMA_IAM_UPSTREAM_TIMEOUT_SECONDS": "forever"},
        ["KUMA_IAM_UPSTREAM_TIMEOUT_SECONDS"],
        id="bad-setting",
    ),
]


@pytest.mark.parametrize(("args", "changes", "named"), ERRORS)
def test_errors_exit_2_with_one_line_and_no_traceback(
    args: list[str], changes: dict[str, str | None], named: list[str], laptop: dict[str, str]
) -> None:
    # (a "closed" endpoint is a port held bound but never listening for the whole run: refused at once, and
    # no parallel test can start listening there meanwhile)
    environment = dict(laptop)
    with refusing_port() as closed:
        for name, value in changes.items():
            if value is None:
                environment.pop(name, None)
            elif value == "closed":
                environment[name] = f"http://127.0.0.1:{closed}"
            else:
                environment[name] = value
        environment["KUMA_IAM_UPSTREAM_ATTEMPTS"] = "1"
        assert_one_line_error(sweep(*args, environment=environment), *named)
