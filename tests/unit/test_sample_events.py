"""The sample events and their expected answers (events/<function>/expected.json, read by the sam tier and
`make sam-local-invoke`): every event has one, and the matching rule says what it promises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str

from kuma_iam_cli.local.compliance_demo import COMPLIANCE_DEMO_ROLES
from kuma_iam_cli.local.compliance_events import COMPLIANCE_CASES
from kuma_iam_cli.local.events import VERIFIER_CASES
from kuma_iam_cli.local.expected import describe, expected_answers, function_of, mismatches, sample_events
from kuma_iam_cli.local.expected import main as expected_main
from kuma_iam_cli.local.token_events import TOKEN_ISSUER_CASES
from support.project_files import REPO

EVENTS = REPO / "events"


def test_every_event_has_an_expected_answer_and_every_answer_an_event() -> None:
    labels = {event.label for event in sample_events(EVENTS)}

    assert labels
    assert labels == set(expected_answers(EVENTS))


def test_every_events_folder_feeds_a_function_of_the_template() -> None:
    decoded, _ = decode_str((REPO / "template.yaml").read_text())
    functions = {
        name
        for name, resource in decoded["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }

    assert {event.function for event in sample_events(EVENTS)} <= functions


def test_the_verifiers_events_are_exactly_its_cases() -> None:
    # `kuma-iam events` writes one file per case; the committed folder holds those and nothing else
    committed = {event.case for event in sample_events(EVENTS) if event.folder == "verifier"}

    assert committed == {case.name for case in VERIFIER_CASES}


def test_tag_compliances_events_are_exactly_its_cases() -> None:
    committed = {event.case for event in sample_events(EVENTS) if event.folder == "tag_compliance"}

    assert committed == {case.name for case in COMPLIANCE_CASES}


def test_the_token_issuers_events_are_exactly_its_cases() -> None:
    committed = {event.case for event in sample_events(EVENTS) if event.folder == "token_issuer"}

    assert committed == {case.name for case in TOKEN_ISSUER_CASES}


def test_the_scheduled_sweep_finds_every_rule_each_demo_role_is_seeded_to_break() -> None:
    # Given the demo roles seeded to break rules (serve prints them), and the sweep's expected summary
    seeded = {(rule, spec.name) for spec in COMPLIANCE_DEMO_ROLES for rule in spec.breaks}
    expected = expected_answers(EVENTS)["tag_compliance/scheduled-sweep"]["findings"]

    # Then each of them is among its findings (the verifier's demo roles add their trust findings)
    assert seeded
    assert seeded <= {(finding["rule"], finding["roleName"]) for finding in expected}


def test_folder_names_map_to_function_names() -> None:
    assert function_of("verifier") == "VerifierFunction"
    assert function_of("tag-compliance") == "TagComplianceFunction"
    assert function_of("token_issuer") == "TokenIssuerFunction"


ALLOW = {"statusCode": 200, "body": {"allowed": True, "identity": {"roleName": "backend-task"}}}
MATCHING: list[tuple[str, Any, Any, list[str]]] = [
    (
        "extra keys are free, a JSON body is read",
        ALLOW,
        {
            "statusCode": 200,
            "body": '{"allowed": true, "identity": {"roleName": "backend-task", "arn": "x"}}',
        },
        [],
    ),
    ("a body already decoded", ALLOW, {"statusCode": 200, "body": ALLOW["body"]}, []),
    (
        "another status",
        ALLOW,
        {"statusCode": 400, "body": '{"allowed": true, "identity": {"roleName": "backend-task"}}'},
        ["answer.statusCode: expected 200, got 400"],
    ),
    (
        "a missing key",
        ALLOW,
        {"statusCode": 200, "body": '{"allowed": true}'},
        ['answer.body.identity: missing (expected {"roleName": "backend-task"})'],
    ),
    ("true is not 1", {"allowed": True}, {"allowed": 1}, ["answer.allowed: expected true, got 1"]),
    ("null is compared", {"mesh": None}, {"mesh": "default"}, ["answer.mesh: expected null, got 'default'"]),
    (
        "a body that is not JSON",
        ALLOW,
        {"statusCode": 200, "body": "oops"},
        ["answer.body: expected JSON, got 'oops'"],
    ),
    ("lists item by item", {"findings": [{"rule": "a"}]}, {"findings": [{"rule": "a", "x": 1}]}, []),
    (
        "lists of another length",
        {"findings": []},
        {"findings": [1]},
        ["answer.findings: expected [], got [1]"],
    ),
    ("not an object", ALLOW, None, ["answer: expected an object, got null"]),
]


@pytest.mark.parametrize(("label", "expected", "actual", "problems"), MATCHING, ids=[m[0] for m in MATCHING])
def test_an_answer_matches_when_it_has_what_is_expected(
    label: str, expected: Any, actual: Any, problems: list[str]
) -> None:
    assert mismatches(expected, actual) == problems


def test_expected_answers_read_in_a_few_words() -> None:
    answers = expected_answers(EVENTS)

    assert describe(answers["verifier/allowed"]) == "allow"
    assert describe(answers["verifier/mesh-mismatch"]) == "mesh_mismatch"
    assert describe(answers["verifier/malformed-token"]) == "HTTP 400 invalid_request"
    assert describe(answers["tag_compliance/tag-role-by-admin"]) == "no findings"
    unauthorized = "kuma-tag-change-unauthorized on orders-task"
    assert describe(answers["tag_compliance/tag-role-by-other"]) == unauthorized
    sweep = answers["tag_compliance/scheduled-sweep"]
    assert describe(sweep) == f"{len(sweep['findings'])} findings"
    assert describe(answers["tag_compliance/not-an-iam-event"]) == "error invalid_event"
    assert describe(answers["token_issuer/allowed"]) == "token kid 2"
    assert describe(answers["token_issuer/keys"]) == "keys"
    assert describe(answers["token_issuer/caller-mismatch"]) == "denied caller_mismatch"
    assert describe(answers["token_issuer/malformed-request"]) == "HTTP 400 invalid_request"


# --- `python -m kuma_iam_cli.local.expected`, as tools/sam-local/invoke.sh runs it ----------------------


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = expected_main(["--events", str(EVENTS), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_passes_the_expected_answer(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Given what `sam local invoke` printed for mesh-mismatch: logs first, the answer on the last line
    answer = tmp_path / "answer.json"
    body = json.dumps({"allowed": False, "reason": "mesh_mismatch", "message": "..."})
    answer.write_text("START\n" + json.dumps({"statusCode": 200, "body": body}) + "\n")

    code, out, _ = _run(capsys, "check", "verifier/mesh-mismatch", str(answer))

    assert (code, out) == (0, "PASS mesh_mismatch\n")


def test_check_fails_another_answer_saying_what_differs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    answer = tmp_path / "answer.json"
    answer.write_text(json.dumps({"statusCode": 200, "body": json.dumps({"allowed": True})}))

    code, out, _ = _run(capsys, "check", "verifier/mesh-mismatch", str(answer))

    assert code == 1
    assert out == (
        "FAIL answer.body.allowed: expected false, got true; "
        "answer.body.reason: missing (expected 'mesh_mismatch')\n"
    )


def test_check_fails_no_answer_and_unknown_events(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("")

    code, out, _ = _run(capsys, "check", "verifier/mesh-mismatch", str(empty))
    assert (code, out) == (1, "FAIL no answer: the function printed nothing\n")
    code, out, _ = _run(capsys, "check", "verifier/no-such-case", str(empty))
    assert code == 1
    assert out.startswith("FAIL no expected answer for verifier/no-such-case")


def test_list_names_each_event_and_its_function(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "list")

    assert code == 0
    assert out.splitlines() == [f"{event.label} {event.function}" for event in sample_events(EVENTS)]


def test_list_refuses_a_mistyped_event_listing_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "list", "--validate", str(EVENTS / "verifier" / "alowed.json"))

    assert (code, out) == (2, "")
    assert err.startswith("not an event: ")
    assert "  events/verifier/allowed.json" in err.splitlines()
    assert "expected.json" not in err
