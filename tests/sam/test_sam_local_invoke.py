"""`sam local invoke` of every sample event in a Lambda container, each answer checked against its case."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str

from kuma_iam_cli.local.compliance_events import COMPLIANCE_CASES, ComplianceCase
from kuma_iam_cli.local.events import VERIFIER_CASES, VerifierCase, write_events
from kuma_iam_cli.local.seed import UserCredentials
from kuma_iam_cli.local.token_events import TOKEN_ISSUER_CASES, TokenIssuerCase
from support.kuma_rules import dataplane_keys_for, parse_and_verify, zone_keys_for
from support.project_files import REPO
from support.sam_stack import SERVER_ID, InvokeResult, SamStack


def _function_of(events_folder: str) -> str:
    """events/<folder>/ feeds the function of that name: verifier -> VerifierFunction."""
    return "".join(part.capitalize() for part in events_folder.replace("-", "_").split("_")) + "Function"


def _assert_answer(case: VerifierCase, result: InvokeResult) -> None:
    assert result.status == case.expected_status, result.explain()
    if case.expected_status != 200:
        assert result.body["error"] == "invalid_request", result.explain()
        return
    assert result.body["allowed"] is case.expected_allowed, result.explain()
    if not case.expected_allowed:
        assert result.body["reason"] == case.expected_reason, result.explain()
        return
    identity = result.body["identity"]
    assert isinstance(case.signer, tuple)
    account, role_name = case.signer
    assert (identity["account"], identity["roleName"]) == (account, role_name)
    assert (identity["type"], identity["mesh"]) == (case.dataplane["type"], case.dataplane["mesh"])


def test_every_committed_event_is_a_case_of_a_function_in_the_template() -> None:
    # Given the committed events/ and the template
    decoded, _ = decode_str((REPO / "template.yaml").read_text())
    functions = {
        name
        for name, resource in decoded["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    folders = sorted(path.name for path in (REPO / "events").iterdir() if path.is_dir())

    # Then each folder feeds a function of the template, and each function's files are exactly its cases,
    # so invoking every case below invokes every committed file
    assert {_function_of(folder) for folder in folders} <= functions
    committed = {path.stem for path in (REPO / "events" / "verifier").glob("*.json")}
    assert committed == {case.name for case in VERIFIER_CASES}
    committed = {path.stem for path in (REPO / "events" / "tag_compliance").glob("*.json")}
    assert committed == {case.name for case in COMPLIANCE_CASES}
    committed = {path.stem for path in (REPO / "events" / "token_issuer").glob("*.json")}
    assert committed == {case.name for case in TOKEN_ISSUER_CASES}


@pytest.mark.parametrize("case", VERIFIER_CASES, ids=lambda case: case.name)
def test_sam_local_invoke_answers_each_case(case: VerifierCase, sam_stack: SamStack, tmp_path: Path) -> None:
    # Given the case's event, signed now against the embedded AWS
    event = sam_stack.signed_event(case, tmp_path)

    # When the built function runs it in a Lambda container
    result = sam_stack.invoke("VerifierFunction", event, label=case.name)

    # Then the answer is the case's
    _assert_answer(case, result)


def test_readme_command_on_the_committed_events(sam_stack: SamStack, tmp_path: Path) -> None:
    # Given a copy of the project's events/ and samconfig.toml, re-signed for this run, next to a build
    project = tmp_path / "project"
    shutil.copytree(REPO / "events", project / "events")
    shutil.copy(REPO / "samconfig.toml", project / "samconfig.toml")
    (project / ".aws-sam").mkdir()
    (project / ".aws-sam" / "build").symlink_to(sam_stack.build_template.parent, target_is_directory=True)
    written = write_events(sam_stack.world, project / "events", server_id=SERVER_ID)
    # (the refresh rewrites the committed files; it adds none, and tag compliance's come out unchanged)
    assert {path.relative_to(project) for path in written} == {
        path.relative_to(REPO) for path in (REPO / "events").glob("*/*.json")
    }
    for path in (REPO / "events" / "tag_compliance").glob("*.json"):
        assert (project / path.relative_to(REPO)).read_text() == path.read_text(), path.name
    (project / "events" / "env.json").write_text(json.dumps(sam_stack.env_vars, indent=2) + "\n")
    (case,) = [case for case in VERIFIER_CASES if case.name == "allowed"]

    # When the README's command runs there, as typed: the built template, env file and image come from
    # .aws-sam/build and samconfig.toml's `local` environment
    result = sam_stack.invoke(
        "VerifierFunction", "events/verifier/allowed.json", label="README command", cwd=project, as_typed=True
    )

    # Then the function allows the backend task
    _assert_answer(case, result)


def test_replay_table_makes_a_token_single_use(sam_stack: SamStack, tmp_path: Path) -> None:
    # Given the verifier with KUMA_IAM_REPLAY_TABLE set (as ReplayProtection=Enabled does) and a fresh event
    env_vars = json.loads(sam_stack.env_file.read_text())
    env_vars["VerifierFunction"]["KUMA_IAM_REPLAY_TABLE"] = "kuma-iam-replay"
    env_file = tmp_path / "env-replay.json"
    env_file.write_text(json.dumps(env_vars))
    (event,) = [
        path
        for path in write_events(sam_stack.world, tmp_path, server_id=SERVER_ID)
        if path.parent.name == "verifier" and path.stem == "allowed"
    ]

    # When the same event is invoked twice
    first = sam_stack.invoke("VerifierFunction", event, label="replay: first use", env_file=env_file)
    second = sam_stack.invoke("VerifierFunction", event, label="replay: second use", env_file=env_file)

    # Then the first use is allowed and the second denied as replayed
    assert (first.status, first.body.get("allowed")) == (200, True), first.explain()
    assert (second.status, second.body.get("reason")) == (200, "replayed"), second.explain()


@pytest.mark.parametrize("case", COMPLIANCE_CASES, ids=lambda case: case.name)
def test_sam_local_invoke_tag_compliance_summarizes_each_case(
    case: ComplianceCase, sam_stack: SamStack
) -> None:
    # Given the committed event (CloudTrail via EventBridge, or the schedule's tick)
    event = REPO / "events" / "tag_compliance" / f"{case.name}.json"

    # When the built function takes it in a Lambda container, with the compliance principal's keys
    result = sam_stack.invoke(
        "TagComplianceFunction", event, label=case.name, user=sam_stack.world.compliance
    )

    # Then its summary is the case's
    summary = result.body
    if case.error:
        assert summary["error"]["code"] == "invalid_event", result.explain()
        return
    assert "error" not in summary, result.explain()
    assert "findings" in summary, result.explain()
    found = {(finding["rule"], finding["roleName"]) for finding in summary["findings"]}
    if case.only_these:
        assert found == set(case.findings), result.explain()
    else:
        assert set(case.findings) <= found, result.explain()
    if case.evaluated is not None:
        assert summary["evaluated"] == case.evaluated, result.explain()
    assert summary["remediations"] == []


@pytest.fixture(scope="module")
def published_keys(sam_stack: SamStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """GET /v1/keys answered by the built function once: the keys a control plane would be given."""
    (keys_case,) = [case for case in TOKEN_ISSUER_CASES if case.name == "keys"]
    answer = sam_stack.invoke(
        "TokenIssuerFunction",
        sam_stack.signed_event(keys_case, tmp_path_factory.mktemp("keys")),
        label="keys",
        user=_issuer(sam_stack),
    )
    assert answer.status == 200, answer.explain()
    return answer.body


@pytest.mark.parametrize("case", TOKEN_ISSUER_CASES, ids=lambda case: case.name)
def test_sam_local_invoke_answers_each_token_issuer_case(
    case: TokenIssuerCase, sam_stack: SamStack, published_keys: dict[str, Any], tmp_path: Path
) -> None:
    # Given the case's event, signed now against the embedded AWS
    event = sam_stack.signed_event(case, tmp_path)

    # When the built token issuer runs it in a Lambda container (KMS, Secrets Manager, DynamoDB on moto)
    result = sam_stack.invoke("TokenIssuerFunction", event, label=case.name, user=_issuer(sam_stack))

    # Then the answer is the case's: a token a control plane accepts, the keys, or the refusal
    assert result.status == case.expected_status, result.explain()
    if case.expected_status == 403:
        assert (result.body["error"], result.body["reason"]) == ("denied", case.expected_reason), (
            result.explain()
        )
    elif case.expected_status == 400:
        assert result.body["error"] == case.expected_reason, result.explain()
    elif case.route == "GET /v1/keys":
        assert dataplane_keys_for(result.body, "default"), result.explain()
        assert zone_keys_for(result.body), result.explain()
    else:
        assert set(result.body) == {"token", "kid", "jti", "expiresAt"}, result.explain()
        zone = "zone" in case.fields
        keys = (
            zone_keys_for(published_keys)
            if zone
            else dataplane_keys_for(published_keys, case.dataplane["mesh"])
        )
        claims = parse_and_verify(result.body["token"], keys, now=time.time())
        assert ("Zone" in claims) == zone, claims


def _issuer(sam_stack: SamStack) -> UserCredentials:
    """The token issuer's own principal: sam local hands a function the keys of its environment."""
    assert sam_stack.token_keys is not None
    return sam_stack.token_keys.issuer
