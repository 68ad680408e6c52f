"""What a valid kuma.io/* role is, and whether a claimed Dataplane fits it; shared by every function."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from kuma_iam.errors import DenyReason

TAG_PREFIX = "kuma.io/"
TYPE_TAG = "kuma.io/type"
MESH_TAG = "kuma.io/mesh"
SERVICE_TAG = "kuma.io/service"
WORKLOAD_TAG = "kuma.io/workload"
KNOWN_TAGS = frozenset({TYPE_TAG, MESH_TAG, SERVICE_TAG, WORKLOAD_TAG})

# Kuma resource names (meshes, workloads) are DNS-1123 labels; service names also allow '_' and '.'.
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
SERVICE_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?")


class ProxyType(StrEnum):
    DATAPLANE = "dataplane"
    INGRESS = "ingress"
    EGRESS = "egress"


class Severity(StrEnum):
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


@dataclass(frozen=True, slots=True)
class Rule:
    """A stable rule id (alerts, dashboards and Security Hub key on it), its severity and what it means."""

    id: str
    severity: Severity
    title: str


# Every rule any function reports, in one table: the tag rules below, the trust-policy rules (trust.py) and
# the tag-change rule (compliance/changes.py) use these and never a literal of their own.
KUMA_TYPE_INVALID = Rule(
    "kuma-type-invalid", Severity.HIGH, "kuma.io/type is not dataplane, ingress or egress"
)
KUMA_TYPE_MISSING = Rule("kuma-type-missing", Severity.HIGH, "kuma.io/* tags without kuma.io/type")
KUMA_MESH_MISSING = Rule("kuma-mesh-missing", Severity.HIGH, "a dataplane role without kuma.io/mesh")
KUMA_VALUE_MALFORMED = Rule("kuma-value-malformed", Severity.MEDIUM, "a kuma.io/* value is not a Kuma name")
KUMA_KEY_UNKNOWN = Rule("kuma-key-unknown", Severity.LOW, "a kuma.io/* key this mesh does not read")
KUMA_KEY_NONCANONICAL = Rule(
    "kuma-key-noncanonical", Severity.HIGH, "a kuma.io/* key spelled in another case or with spaces"
)
KUMA_TAG_CHANGE_UNAUTHORIZED = Rule(
    "kuma-tag-change-unauthorized", Severity.HIGH, "kuma.io/* tags changed by a principal not a tag admin"
)
TRUST_NOT_ECS_TASKS = Rule(
    "trust-not-ecs-tasks", Severity.HIGH, "a kuma-tagged role that others than ECS tasks may assume"
)
TRUST_NO_SOURCE_CONDITION = Rule(
    "trust-no-source-condition",
    Severity.MEDIUM,
    "a kuma-tagged role's ECS trust without aws:SourceAccount or aws:SourceArn",
)
RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        KUMA_TYPE_INVALID,
        KUMA_TYPE_MISSING,
        KUMA_MESH_MISSING,
        KUMA_VALUE_MALFORMED,
        KUMA_KEY_UNKNOWN,
        KUMA_KEY_NONCANONICAL,
        KUMA_TAG_CHANGE_UNAUTHORIZED,
        TRUST_NOT_ECS_TASKS,
        TRUST_NO_SOURCE_CONDITION,
    )
}


@dataclass(frozen=True, slots=True)
class TagViolation:
    """One way a role's kuma.io/* tags are wrong; `rule` is a stable id for alerts and dashboards."""

    rule: str
    severity: Severity
    message: str
    key: str
    # Unknown keys are reported but grant nothing, so they do not make a role unusable.
    blocks_identity: bool = True


@dataclass(frozen=True, slots=True)
class RoleTags:
    """The identity a correctly tagged role may take."""

    type: ProxyType
    mesh: str | None
    service: str | None
    workload: str | None


@dataclass(frozen=True, slots=True)
class DataplaneClaim:
    """What the sidecar says it is: the Dataplane resource the control plane is about to admit."""

    type: ProxyType
    mesh: str | None
    services: tuple[str, ...]
    workload: str | None


@dataclass(frozen=True, slots=True)
class Mismatch:
    reason: DenyReason
    message: str


def tag_violations(tags: Mapping[str, str]) -> list[TagViolation]:
    """Every problem with the kuma.io/* tags of one role; tags outside the prefix are not ours to judge."""
    violations = [_noncanonical(key) for key in sorted(tags) if _is_noncanonical(key)]
    raw_type = tags.get(TYPE_TAG)
    if raw_type is not None and raw_type not in set(ProxyType):
        violations.append(
            _violation(
                KUMA_TYPE_INVALID,
                f"{TYPE_TAG} is {shown(raw_type)}; it must be dataplane, ingress or egress",
                TYPE_TAG,
            )
        )
    if raw_type is None and any(key.startswith(TAG_PREFIX) for key in tags):
        violations.append(_violation(KUMA_TYPE_MISSING, f"kuma.io/* tags without {TYPE_TAG}", TYPE_TAG))
    if raw_type == ProxyType.DATAPLANE and MESH_TAG not in tags:
        violations.append(_violation(KUMA_MESH_MISSING, f"a dataplane role must carry {MESH_TAG}", MESH_TAG))
    for key, pattern, what in (
        (MESH_TAG, DNS_LABEL, "a DNS label: a-z, 0-9 and '-', at most 63 characters"),
        (WORKLOAD_TAG, DNS_LABEL, "a DNS label: a-z, 0-9 and '-', at most 63 characters"),
        (SERVICE_TAG, SERVICE_NAME, "letters, digits, '_', '.' and '-', at most 253 characters"),
    ):
        if key in tags and not pattern.fullmatch(tags[key]):
            violations.append(
                _violation(
                    KUMA_VALUE_MALFORMED, f"{key} is {shown(tags[key])}, not a valid Kuma name ({what})", key
                )
            )
    for key in sorted(tags):
        if key.startswith(TAG_PREFIX) and key not in KNOWN_TAGS and not _is_noncanonical(key):
            violations.append(
                _violation(
                    KUMA_KEY_UNKNOWN,
                    f"{shown(key)} is not a kuma.io tag this mesh reads",
                    key,
                    blocks_identity=False,
                )
            )
    return violations


def is_kuma_key(key: str) -> bool:
    """Whether IAM may treat the key as a kuma.io/* key, however it is spelled: IAM compares tag keys without
    case, and an operator reading `kuma.io/mesh ` sees the same key. The preventive policy
    (`kuma-iam policy`) denies at least every key this calls kuma."""
    return key.strip().casefold().startswith(TAG_PREFIX)


# What an IAM policy can grant: StringLike compares with case, so the compliance roles' UntagRole grants list
# the 64 ASCII spellings of the prefix; other kuma keys (leading spaces, a KELVIN SIGN) need a person.
_ASCII_SPELLED_PREFIX = re.compile(r"[kK][uU][mM][aA]\.[iI][oO]/")


def is_removable_kuma_key(key: str) -> bool:
    """A kuma.io/* key the compliance roles may remove: it starts with kuma.io/ in some ASCII letter case."""
    return _ASCII_SPELLED_PREFIX.match(key) is not None


def _violation(rule: Rule, message: str, key: str, *, blocks_identity: bool = True) -> TagViolation:
    return TagViolation(rule.id, rule.severity, message, key, blocks_identity)


def _is_noncanonical(key: str) -> bool:
    """A kuma.io/* key not written as one: `Kuma.io/Service` or `kuma.io/service ` would be a restriction
    this module could not see."""
    return is_kuma_key(key) and key != key.strip().casefold()


def _noncanonical(key: str) -> TagViolation:
    return _violation(
        KUMA_KEY_NONCANONICAL,
        f"{shown(key)} spells a kuma.io tag key in another case or with spaces; only the exact lowercase "
        f"keys {', '.join(sorted(KNOWN_TAGS))} count, so the role is unusable until it is renamed",
        key,
    )


def shown(value: str) -> str:
    """A tag key or value for a message: quoted, control characters escaped, bounded."""
    return repr(value[:64]) + ("…" if len(value) > 64 else "")


def role_tags(tags: Mapping[str, str]) -> RoleTags | list[TagViolation]:
    """The role's identity, or the violations that keep it from having one.

    A pure function of the tags, so a container judges each tag set once: the verifier asks on every
    verification of a role it has cached (bounded: roles' tag sets, which IAM holds, not callers' input).
    """
    judged = _judged(frozenset(tags.items()))
    return judged if isinstance(judged, RoleTags) else list(judged)


@functools.lru_cache(maxsize=1024)
def _judged(items: frozenset[tuple[str, str]]) -> RoleTags | tuple[TagViolation, ...]:
    tags = dict(items)
    if blocking := tuple(v for v in tag_violations(tags) if v.blocks_identity):
        return blocking
    if TYPE_TAG not in tags:
        return (_violation(KUMA_TYPE_MISSING, f"the role has no {TYPE_TAG} tag", TYPE_TAG),)
    return RoleTags(
        type=ProxyType(tags[TYPE_TAG]),
        mesh=tags.get(MESH_TAG),
        service=tags.get(SERVICE_TAG),
        workload=tags.get(WORKLOAD_TAG),
    )


def claim_mismatch(role: RoleTags, claim: DataplaneClaim) -> Mismatch | None:
    """The first way the claim exceeds what the role's tags allow, in the order the design lists them."""
    if claim.type != role.type:
        return Mismatch(
            DenyReason.TYPE_MISMATCH, f"the role is for type {role.type}, the claim is type {claim.type}"
        )
    if role.mesh is not None and claim.mesh != role.mesh:
        return Mismatch(
            DenyReason.MESH_MISMATCH, f"the role is for mesh {role.mesh!r}, the claim names {claim.mesh!r}"
        )
    if role.service is not None and not claim.services:
        return Mismatch(
            DenyReason.SERVICE_MISMATCH,
            f"the role is for service {role.service!r} only; the claim must carry kuma.io/service",
        )
    if role.service is not None and any(service != role.service for service in claim.services):
        return Mismatch(DenyReason.SERVICE_MISMATCH, f"the role is for service {role.service!r} only")
    if role.workload is not None and claim.workload != role.workload:
        return Mismatch(
            DenyReason.WORKLOAD_MISMATCH,
            f"the role is for workload {role.workload!r}, the claim names {claim.workload!r}",
        )
    return None
