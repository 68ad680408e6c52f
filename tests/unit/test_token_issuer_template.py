"""template.yaml's token issuer grants: every KMS key it may sign with (the stack's own and the operator's),
on the same terms: RS256 (RSASSA_PKCS1_V1_5_SHA_256) over RAW messages, as kuma_iam.tokens.signers signs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cfnlint.decode import decode_str

from kuma_iam.tokens.signers import KMS_SIGNING_ALGORITHM
from support.project_files import REPO


@pytest.fixture(scope="module")
def issuer_statements() -> list[dict[str, Any]]:
    decoded, problems = decode_str((REPO / "template.yaml").read_text())
    assert not problems, problems
    template = json.loads(json.dumps(decoded))
    found = []
    for policy in template["Resources"]["TokenIssuerFunctionRole"]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:  # [condition, the statement, AWS::NoValue]
                statement = statement["Fn::If"][1]
            found.append(statement)
    return found


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def test_every_kms_sign_grant_is_for_rs256_over_raw_messages(issuer_statements: list[dict[str, Any]]) -> None:
    signing = [statement for statement in issuer_statements if "kms:Sign" in _actions(statement)]
    assert {statement["Sid"] for statement in signing} == {"SignTokens", "SignWithOperatorKmsKeys"}
    for statement in signing:
        assert statement.get("Condition") == {
            "StringEquals": {"kms:SigningAlgorithm": KMS_SIGNING_ALGORITHM, "kms:MessageType": "RAW"}
        }, statement["Sid"]
        # GetPublicKey has neither key: in the same statement it would never be allowed
        assert _actions(statement) == ["kms:Sign"], statement["Sid"]


def test_the_kms_grants_are_sign_and_get_public_key_only(issuer_statements: list[dict[str, Any]]) -> None:
    kms = {
        action
        for statement in issuer_statements
        for action in _actions(statement)
        if action.startswith("kms:")
    }
    assert kms == {"kms:Sign", "kms:GetPublicKey"}
