"""The kuma.io/* tag rules that verifier, compliance and issuer share: each fires exactly when it should."""

from __future__ import annotations

import pytest

from kuma_iam.errors import DenyReason
from kuma_iam.rules import (
    DataplaneClaim,
    ProxyType,
    RoleTags,
    Severity,
    TagViolation,
    claim_mismatch,
    is_kuma_key,
    role_tags,
    tag_violations,
)

TYPE, MESH, SERVICE, WORKLOAD = "kuma.io/type", "kuma.io/mesh", "kuma.io/service", "kuma.io/workload"
DATAPLANE = {TYPE: "dataplane", MESH: "default"}


def rules_of(violations: list[TagViolation]) -> list[tuple[str, str]]:
    return sorted((violation.rule, violation.key) for violation in violations)


# --- tag_violations ----------------------------------------------------------------------------------------

CLEAN = [
    pytest.param({}, id="no-tags"),
    pytest.param(
        {"team": "payments", "Name": "backend", "aws:cloudformation:stack-name": "x"}, id="foreign-tags"
    ),
    pytest.param(DATAPLANE, id="dataplane-with-mesh"),
    pytest.param({**DATAPLANE, SERVICE: "backend", WORKLOAD: "backend-v1"}, id="dataplane-every-tag"),
    pytest.param({TYPE: "ingress"}, id="ingress-without-mesh"),
    pytest.param({TYPE: "egress"}, id="egress-without-mesh"),
    pytest.param({TYPE: "egress", MESH: "default"}, id="egress-with-mesh"),
    pytest.param({**DATAPLANE, MESH: "a" * 63}, id="mesh-63-chars"),
    pytest.param({**DATAPLANE, MESH: "0"}, id="mesh-one-digit"),
    pytest.param({**DATAPLANE, SERVICE: "backend_default_svc_80"}, id="service-kube-style"),
    pytest.param({**DATAPLANE, SERVICE: "Backend.Payments-v2"}, id="service-dots-and-case"),
    pytest.param({**DATAPLANE, SERVICE: "a" * 253}, id="service-253-chars"),
    pytest.param({**DATAPLANE, "kuma.io": "x", "kuma.iox/type": "x"}, id="lookalike-prefixes"),
]


@pytest.mark.parametrize("tags", CLEAN)
def test_well_tagged_or_untagged_roles_have_no_violations(tags: dict[str, str]) -> None:
    assert tag_violations(tags) == []


FIRES = [
    # kuma-type-invalid
    pytest.param({TYPE: "gateway"}, [("kuma-type-invalid", TYPE)], id="type-gateway"),
    pytest.param({TYPE: "Dataplane", MESH: "default"}, [("kuma-type-invalid", TYPE)], id="type-case"),
    pytest.param({TYPE: " dataplane", MESH: "default"}, [("kuma-type-invalid", TYPE)], id="type-space"),
    pytest.param({TYPE: ""}, [("kuma-type-invalid", TYPE)], id="type-empty"),
    # kuma-type-missing
    pytest.param({MESH: "default"}, [("kuma-type-missing", TYPE)], id="mesh-without-type"),
    pytest.param({SERVICE: "backend"}, [("kuma-type-missing", TYPE)], id="service-without-type"),
    pytest.param(
        {"kuma.io/zone": "east"},
        [("kuma-key-unknown", "kuma.io/zone"), ("kuma-type-missing", TYPE)],
        id="unknown-only",
    ),
    # kuma-mesh-missing: only for a dataplane
    pytest.param({TYPE: "dataplane"}, [("kuma-mesh-missing", MESH)], id="dataplane-without-mesh"),
    pytest.param(
        {TYPE: "dataplane", SERVICE: "backend"}, [("kuma-mesh-missing", MESH)], id="dataplane-service-no-mesh"
    ),
    # kuma-value-malformed
    *[
        pytest.param({**DATAPLANE, MESH: mesh}, [("kuma-value-malformed", MESH)], id=f"mesh-{name}")
        for name, mesh in {
            "uppercase": "Default",
            "leading-dash": "-default",
            "trailing-dash": "default-",
            "underscore": "de_fault",
            "dot": "de.fault",
            "empty": "",
            "64-chars": "a" * 64,
            "space": "my mesh",
            "unicode": "défaut",
        }.items()
    ],
    *[
        pytest.param(
            {**DATAPLANE, WORKLOAD: workload}, [("kuma-value-malformed", WORKLOAD)], id=f"workload-{name}"
        )
        for name, workload in {
            "uppercase": "Backend",
            "slash": "ns/backend",
            "empty": "",
            "64-chars": "w" * 64,
        }.items()
    ],
    *[
        pytest.param(
            {**DATAPLANE, SERVICE: service}, [("kuma-value-malformed", SERVICE)], id=f"service-{name}"
        )
        for name, service in {
            "leading-dash": "-svc",
            "trailing-dot": "svc.",
            "colon": "svc:80",
            "slash": "ns/svc",
            "space": "my svc",
            "empty": "",
            "254-chars": "s" * 254,
            "wildcard": "*",
        }.items()
    ],
    # kuma-key-unknown
    pytest.param(
        {**DATAPLANE, "kuma.io/zone": "east"}, [("kuma-key-unknown", "kuma.io/zone")], id="unknown-key"
    ),
    # kuma-key-noncanonical: IAM compares tag keys without case, so any spelling but the exact lowercase one
    # would be a restriction (or an identity) the rules could not see
    pytest.param(
        {**DATAPLANE, "kuma.io/Type": "x"}, [("kuma-key-noncanonical", "kuma.io/Type")], id="known-key-case"
    ),
    pytest.param(
        {**DATAPLANE, "Kuma.io/Service": "backend", "KUMA.IO/WORKLOAD": "backend"},
        [("kuma-key-noncanonical", "KUMA.IO/WORKLOAD"), ("kuma-key-noncanonical", "Kuma.io/Service")],
        id="restrictions-in-other-case",
    ),
    pytest.param(
        {**DATAPLANE, "kuma.io/service ": "backend"},
        [("kuma-key-noncanonical", "kuma.io/service ")],
        id="trailing-space",
    ),
    pytest.param(
        {**DATAPLANE, " kuma.io/workload": "w"},
        [("kuma-key-noncanonical", " kuma.io/workload")],
        id="lead-space",
    ),
    pytest.param(
        {**DATAPLANE, "KUMA.IO/ZONE": "east"}, [("kuma-key-noncanonical", "KUMA.IO/ZONE")], id="unknown-upper"
    ),
    pytest.param(
        {**DATAPLANE, "kuma.io/\u017fervice": "x"},
        [("kuma-key-noncanonical", "kuma.io/\u017fervice")],
        id="long-s-folds-to-service",
    ),
    pytest.param(
        {**DATAPLANE, "\u212aUMA.IO/SERVICE": "x", "\u00a0kuma.io/mesh": "y", "kuma.io/workload\t": "z"},
        [
            ("kuma-key-noncanonical", "\u00a0kuma.io/mesh"),
            ("kuma-key-noncanonical", "kuma.io/workload\t"),
            ("kuma-key-noncanonical", "\u212aUMA.IO/SERVICE"),
        ],
        id="kelvin-sign-no-break-space-tab",
    ),
    pytest.param(
        {"Kuma.io/Type": "dataplane", "Kuma.io/Mesh": "default"},
        [("kuma-key-noncanonical", "Kuma.io/Mesh"), ("kuma-key-noncanonical", "Kuma.io/Type")],
        id="only-noncanonical-keys",
    ),
    pytest.param({**DATAPLANE, "kuma.iox/type": "x", "team/kuma.io/x": "y"}, [], id="other-prefixes-ignored"),
    pytest.param({**DATAPLANE, "kuma.io/": "x"}, [("kuma-key-unknown", "kuma.io/")], id="bare-prefix"),
    # several at once
    pytest.param(
        {TYPE: "gateway", MESH: "BAD", "kuma.io/a": "1", "kuma.io/b": "2"},
        [
            ("kuma-key-unknown", "kuma.io/a"),
            ("kuma-key-unknown", "kuma.io/b"),
            ("kuma-type-invalid", TYPE),
            ("kuma-value-malformed", MESH),
        ],
        id="everything-wrong",
    ),
]


@pytest.mark.parametrize(("tags", "expected"), FIRES)
def test_each_rule_fires_exactly_when_it_should(
    tags: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    # Given a role's tags with specific faults
    # When its violations are listed
    # Then exactly the expected rules fire, each naming the offending key
    assert rules_of(tag_violations(tags)) == sorted(expected)


@pytest.mark.parametrize(
    ("tags", "rule", "severity", "blocks"),
    [
        ({TYPE: "gateway"}, "kuma-type-invalid", Severity.HIGH, True),
        ({MESH: "default"}, "kuma-type-missing", Severity.HIGH, True),
        ({TYPE: "dataplane"}, "kuma-mesh-missing", Severity.HIGH, True),
        ({**DATAPLANE, MESH: "BAD"}, "kuma-value-malformed", Severity.MEDIUM, True),
        ({**DATAPLANE, "kuma.io/zone": "x"}, "kuma-key-unknown", Severity.LOW, False),
        ({**DATAPLANE, "Kuma.io/Zone": "x"}, "kuma-key-noncanonical", Severity.HIGH, True),
    ],
)
def test_each_rule_has_a_stable_severity_and_blocking_effect(
    tags: dict[str, str], rule: str, severity: Severity, blocks: bool
) -> None:
    (violation,) = tag_violations(tags)
    assert (violation.rule, violation.severity, violation.blocks_identity) == (rule, severity, blocks)
    assert violation.message


def test_wrong_type_value_fires_invalid_not_missing() -> None:
    # The tag is there, with a wrong value: that is "invalid", and "missing" would mislead the operator.
    assert [v.rule for v in tag_violations({TYPE: "sidecar", MESH: "default"})] == ["kuma-type-invalid"]


@pytest.mark.parametrize("key", [MESH, SERVICE, WORKLOAD])
def test_value_with_a_trailing_newline_is_malformed(key: str) -> None:
    assert rules_of(tag_violations({**DATAPLANE, key: "default\n"})) == [("kuma-value-malformed", key)]


# --- role_tags ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "identity"),
    [
        (
            {**DATAPLANE, SERVICE: "backend", WORKLOAD: "backend-v1", "team": "x"},
            RoleTags(ProxyType.DATAPLANE, "default", "backend", "backend-v1"),
        ),
        (DATAPLANE, RoleTags(ProxyType.DATAPLANE, "default", None, None)),
        ({TYPE: "ingress"}, RoleTags(ProxyType.INGRESS, None, None, None)),
        ({TYPE: "egress", MESH: "default"}, RoleTags(ProxyType.EGRESS, "default", None, None)),
        ({**DATAPLANE, "kuma.io/zone": "east"}, RoleTags(ProxyType.DATAPLANE, "default", None, None)),
    ],
    ids=["every-tag", "mesh-only", "ingress", "egress-with-mesh", "unknown-key-does-not-block"],
)
def test_correctly_tagged_role_yields_its_identity(tags: dict[str, str], identity: RoleTags) -> None:
    assert role_tags(tags) == identity


@pytest.mark.parametrize(
    ("tags", "rules"),
    [
        ({}, ["kuma-type-missing"]),
        ({"team": "payments"}, ["kuma-type-missing"]),
        ({"kuma.io/zone": "east"}, ["kuma-type-missing"]),
        ({TYPE: "gateway", "kuma.io/zone": "east"}, ["kuma-type-invalid"]),
        ({TYPE: "dataplane"}, ["kuma-mesh-missing"]),
        ({**DATAPLANE, SERVICE: "-bad"}, ["kuma-value-malformed"]),
        ({**DATAPLANE, "Kuma.io/Service": "backend"}, ["kuma-key-noncanonical"]),
    ],
    ids=[
        "no-tags",
        "foreign-tags",
        "unknown-kuma-key-only",
        "invalid-type",
        "no-mesh",
        "malformed-service",
        "noncanonical-restriction",
    ],
)
def test_role_without_a_usable_identity_yields_only_the_blocking_violations(
    tags: dict[str, str], rules: list[str]
) -> None:
    result = role_tags(tags)
    assert isinstance(result, list)
    assert [violation.rule for violation in result] == rules
    assert all(violation.blocks_identity for violation in result)


def test_untagged_role_is_told_it_has_no_type_tag() -> None:
    (violation,) = role_tags({})  # type: ignore[misc]
    assert violation.message == "the role has no kuma.io/type tag"


# --- claim_mismatch ----------------------------------------------------------------------------------------

ROLE = RoleTags(ProxyType.DATAPLANE, "default", "backend", "backend-v1")


def claim(
    type: ProxyType = ProxyType.DATAPLANE,
    mesh: str | None = "default",
    services: tuple[str, ...] = ("backend",),
    workload: str | None = "backend-v1",
) -> DataplaneClaim:
    return DataplaneClaim(type=type, mesh=mesh, services=services, workload=workload)


def test_claim_equal_to_the_role_has_no_mismatch() -> None:
    assert claim_mismatch(ROLE, claim()) is None


@pytest.mark.parametrize(
    ("the_claim", "reason"),
    [
        (claim(ProxyType.INGRESS, "other", ("other",), "other"), DenyReason.TYPE_MISMATCH),
        (claim(mesh="other", services=("other",), workload="other"), DenyReason.MESH_MISMATCH),
        (claim(mesh=None), DenyReason.MESH_MISMATCH),
        (claim(services=("other",), workload="other"), DenyReason.SERVICE_MISMATCH),
        (claim(workload="other"), DenyReason.WORKLOAD_MISMATCH),
        (claim(workload=None), DenyReason.WORKLOAD_MISMATCH),
    ],
    ids=["type-first", "then-mesh", "mesh-none", "then-service", "then-workload", "workload-none"],
)
def test_first_mismatch_is_reported_in_the_design_order(
    the_claim: DataplaneClaim, reason: DenyReason
) -> None:
    mismatch = claim_mismatch(ROLE, the_claim)
    assert mismatch is not None
    assert mismatch.reason is reason


@pytest.mark.parametrize(
    ("services", "allowed"),
    [
        (("backend",), True),
        (("backend", "backend"), True),
        ((), False),  # a role restricted to a service admits only claims that carry it
        (("backend", "admin"), False),
        (("admin", "backend"), False),
        (("Backend",), False),
        (("backend ",), False),
    ],
    ids=["same", "repeated", "none-claimed", "one-extra", "extra-first", "case", "trailing-space"],
)
def test_every_claimed_service_must_equal_the_roles_service(services: tuple[str, ...], allowed: bool) -> None:
    mismatch = claim_mismatch(ROLE, claim(services=services))
    assert (mismatch is None) is allowed
    if mismatch is not None:
        assert mismatch.reason is DenyReason.SERVICE_MISMATCH
        assert "'backend'" in mismatch.message


def test_role_without_service_or_workload_accepts_any_claimed() -> None:
    role = RoleTags(ProxyType.DATAPLANE, "default", None, None)
    assert claim_mismatch(role, claim(services=("anything", "else"), workload="any")) is None


@pytest.mark.parametrize("proxy_type", [ProxyType.INGRESS, ProxyType.EGRESS])
@pytest.mark.parametrize("mesh", [None, "default", "other"])
def test_ingress_or_egress_role_without_mesh_accepts_any_claimed_mesh(
    proxy_type: ProxyType, mesh: str | None
) -> None:
    role = RoleTags(proxy_type, None, None, None)
    assert claim_mismatch(role, claim(proxy_type, mesh, (), None)) is None


def test_ingress_role_with_mesh_refuses_a_claim_without_one() -> None:
    role = RoleTags(ProxyType.INGRESS, "default", None, None)
    mismatch = claim_mismatch(role, claim(ProxyType.INGRESS, None, (), None))
    assert mismatch is not None
    assert mismatch.reason is DenyReason.MESH_MISMATCH


@pytest.mark.parametrize(
    ("the_claim", "fragments"),
    [
        (claim(ProxyType.EGRESS), ("dataplane", "egress")),
        (claim(mesh="other"), ("'default'", "'other'")),
        (claim(workload="other"), ("'backend-v1'", "'other'")),
    ],
    ids=["type", "mesh", "workload"],
)
def test_mismatch_message_names_both_sides(the_claim: DataplaneClaim, fragments: tuple[str, str]) -> None:
    mismatch = claim_mismatch(ROLE, the_claim)
    assert mismatch is not None
    assert all(fragment in mismatch.message for fragment in fragments)


def test_role_without_a_restriction_admits_a_claim_without_a_service() -> None:
    assert claim_mismatch(RoleTags(ProxyType.DATAPLANE, "default", None, None), claim(services=())) is None


def test_invalid_tag_messages_name_the_key_and_what_is_allowed() -> None:
    # Given a role whose type tag holds a wrong value and whose service restriction is miscased
    violations = tag_violations({TYPE: "sidecar", MESH: "default", "Kuma.io/Service": "backend"})
    messages = {violation.rule: violation.message for violation in violations}
    # Then each message says which key, what it holds, and what would be right
    assert "'sidecar'" in messages["kuma-type-invalid"]
    assert "dataplane, ingress or egress" in messages["kuma-type-invalid"]
    assert "'Kuma.io/Service'" in messages["kuma-key-noncanonical"]
    assert "kuma.io/service" in messages["kuma-key-noncanonical"]


@pytest.mark.parametrize(
    ("key", "kuma"),
    [
        ("kuma.io/type", True),
        ("Kuma.io/Service", True),
        ("KUMA.IO/MESH", True),
        (" kuma.io/mesh", True),
        ("kuma.io/workload ", True),
        ("\u3000kuma.io/mesh", True),  # IDEOGRAPHIC SPACE, a \p{Z} character IAM keys may hold
        ("\u212auma.io/type", True),  # KELVIN SIGN folds to k
        ("kuma.io", False),
        ("kuma.io.evil/type", False),
        ("team.kuma.io/owner", False),
        ("x kuma.io/type", False),
        ("team", False),
    ],
)
def test_is_kuma_key_sees_every_spelling_iam_may_treat_as_kuma(key: str, kuma: bool) -> None:
    assert is_kuma_key(key) is kuma
    # and exactly the non-canonical spellings among them are blocking findings
    assert any(v.rule == "kuma-key-noncanonical" for v in tag_violations({key: "x"})) is (
        kuma and key not in ("kuma.io/type",)
    )
