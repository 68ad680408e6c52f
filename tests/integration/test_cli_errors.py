"""What a new user gets wrong with `kuma-iam`, and what it answers: exit status 2 and one line that says what
happened and what to do, never a traceback and never the deny code 1."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kuma_iam_cli.local.seed import HOME_ACCOUNT, DemoWorld, task_credentials
from support.cli_runs import CliRun, printed_decision, run_command, user_environment
from support.fake_aws import Answer, FakeAws
from support.verifier_harness import TokenFactory

pytestmark = pytest.mark.integration


# Tests that call the in-process gateway run the command in its own process: the handler shares this one's
# environment and stdout.


def assert_one_line_error(run: CliRun, *fragments: str) -> None:
    assert run.code == 2, (run.code, run.out, run.err)
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("kuma-iam: "), run.err
    assert "Traceback" not in run.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("127.0.0.1:8080/v1/verify", "needs http:// or https://"),
        ("", "is empty"),
        ("http:///v1/verify", "needs http:// or https:// and a host"),
        ("http://127.0.0.1:99999/v1/verify", "invalid port"),
        ("ftp://127.0.0.1/v1/verify", "needs http:// or https://"),
    ],
)
def test_verify_with_a_malformed_url_says_what_a_good_one_looks_like(
    url: str, fragment: str, demo_world: DemoWorld
) -> None:
    # The installed command in its own process: the exit status is what a script sees
    run = run_command(
        "verify",
        "--url",
        url,
        "--token",
        "x",
        "--mesh",
        "default",
        **user_environment(demo_world.control_plane),
    )

    assert_one_line_error(run, "--url", fragment, "http://127.0.0.1:8080/v1/verify")
    assert run.out == ""


def test_verify_with_a_vault_token_that_is_not_json_names_the_problem(
    run_cli: Callable[..., CliRun], demo_world: DemoWorld, closed_port: int
) -> None:
    run = run_cli(
        "verify",
        "--url",
        f"http://127.0.0.1:{closed_port}/v1/verify",
        "--token",
        '{"iam_http_request_method": ',
        **user_environment(demo_world.control_plane),
    )

    assert_one_line_error(run, "--token", "not a JSON object")


def test_verify_of_a_port_nobody_listens_on_says_it_cannot_reach_it(
    run_cli: Callable[..., CliRun], demo_world: DemoWorld, closed_port: int
) -> None:
    url = f"http://127.0.0.1:{closed_port}/v1/verify"

    run = run_cli(
        "verify", "--url", url, "--token", "x", "--mesh", "d", **user_environment(demo_world.control_plane)
    )

    assert_one_line_error(run, f"cannot reach {url}")


def test_verify_without_credentials_says_whose_it_needs(
    run_cli: Callable[..., CliRun], closed_port: int
) -> None:
    run = run_cli(
        "verify", "--url", f"http://127.0.0.1:{closed_port}/v1/verify", "--token", "x", "--mesh", "d"
    )

    assert_one_line_error(run, "no AWS credentials found", "control plane's credentials")


def test_verify_sent_to_the_embedded_aws_says_which_url_to_use(
    run_cli: Callable[..., CliRun], demo_world: DemoWorld, sign_token: TokenFactory
) -> None:
    # Given the embedded AWS's URL where the verifier's belongs (the moto port, not the gateway's)
    url = f"{demo_world.endpoint_url}/v1/verify"

    # When verify signs and sends a call there
    run = run_cli(
        "verify",
        "--url",
        url,
        "--token",
        str(sign_token(HOME_ACCOUNT, "backend-task")),
        "--mesh",
        "default",
        **user_environment(demo_world.control_plane),
    )

    # Then it says that an AWS API answered, not a verifier, and where the verifier is
    assert_one_line_error(run, url, "XML", "not a verifier's JSON", "embedded AWS", "/v1/verify")


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        (Answer(200, b"<html>hello</html>", (("Content-Type", "text/html"),)), "not a verifier's JSON"),
        (Answer(502, b"Bad Gateway", (("Content-Type", "text/plain"),)), "other than JSON"),
        (Answer(200, b'{"hello": "world"}', (("Content-Type", "application/json"),)), "not a verifier's"),
        (Answer(200, b"[1, 2]", (("Content-Type", "application/json"),)), "other than JSON"),
        (
            Answer(404, b'{"message": "Not Found"}', (("Content-Type", "application/json"),)),
            "the verifier's route is POST /v1/verify",
        ),
    ],
    ids=["html", "plain-text-502", "json-without-a-decision", "json-not-an-object", "json-404"],
)
def test_verify_of_something_that_is_not_a_verifier_exits_2(
    run_cli: Callable[..., CliRun], demo_world: DemoWorld, answer: Answer, fragment: str
) -> None:
    with FakeAws(name="not-a-verifier") as server:
        server.script(then=answer)

        run = run_cli(
            "verify",
            "--url",
            f"{server.url}/v1/verify",
            "--token",
            "x",
            "--mesh",
            "d",
            **user_environment(demo_world.control_plane),
        )

    assert_one_line_error(run, fragment)


def test_verify_of_a_dataplane_without_mesh_shows_the_verifiers_reason_without_pydantic_prefixes(
    verifier_gateway: str, demo_world: DemoWorld, sign_token: TokenFactory
) -> None:
    # Given a dataplane claim without --mesh
    run = run_command(
        "verify",
        "--url",
        verifier_gateway,
        "--token",
        str(sign_token(HOME_ACCOUNT, "backend-task")),
        **user_environment(demo_world.control_plane),
    )

    # Then the verifier's 400 is printed, and stderr says in one line what was wrong
    status, body = printed_decision(run.out)
    assert (status, body["error"]) == (400, "invalid_request")
    assert body["message"] == "dataplane: mesh is required for a dataplane"
    assert_one_line_error(run, "HTTP 400 invalid_request", "mesh is required for a dataplane")
    assert "Value error" not in run.out + run.err


def test_verify_signed_by_a_principal_the_api_refuses_says_whose_credentials_to_use(
    verifier_gateway: str, demo_world: DemoWorld, sign_token: TokenFactory
) -> None:
    run = run_command(
        "verify",
        "--url",
        verifier_gateway,
        "--token",
        str(sign_token(HOME_ACCOUNT, "backend-task")),
        "--mesh",
        "default",
        **user_environment(demo_world.ci_user),
    )

    assert printed_decision(run.out) == (403, {"message": "Forbidden"})
    assert_one_line_error(run, "HTTP 403", "control plane's")


def test_verify_of_a_role_with_bad_tags_names_the_tag_and_what_is_allowed(
    verifier_gateway: str, demo_world: DemoWorld, sign_token: TokenFactory
) -> None:
    # Given the demo's role tagged kuma.io/type=sidecar
    run = run_command(
        "verify",
        "--url",
        verifier_gateway,
        "--token",
        str(sign_token(HOME_ACCOUNT, "bad-type-task")),
        "--mesh",
        "default",
        **user_environment(demo_world.control_plane),
    )

    # Then it is a deny (exit 1) whose message names the key, its value and the allowed values
    assert run.code == 1, run.err
    status, body = printed_decision(run.out)
    assert (status, body["allowed"], body["reason"]) == (200, False, "invalid_role_tags")
    for fragment in ("kuma.io/type", "'sidecar'", "dataplane", "ingress", "egress"):
        assert fragment in body["message"], body["message"]


@pytest.mark.parametrize("server_id", ["", "two words", "tab\there", "x" * 257])
def test_token_for_a_server_id_the_verifier_refuses_signs_nothing(
    server_id: str, demo_world: DemoWorld
) -> None:
    credentials = task_credentials(demo_world, HOME_ACCOUNT, "backend-task")

    run = run_command("token", "--server-id", server_id, AWS_REGION=demo_world.region, **credentials)

    assert_one_line_error(run, "--server-id", "not a server id the verifier accepts")
    assert run.out == ""
