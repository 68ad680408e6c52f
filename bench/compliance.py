"""Tag compliance's figures: a sweep of 2,000 and 5,000 roles against one bare paginated
GetAccountAuthorizationDetails listing of the same roles (IAM's paging from a stand-in: moto answers the
listing in one page), an event's handling against the one GetRole it needs, and memory over 2,000 events."""

from __future__ import annotations

import os
import sys

import boto3

from bench.sampling import ChildPython, Samples, interleaved, spec_file, timed_once
from bench.scoreboard import Figure, at_most, count_at_most
from bench.verifier import CHILD, MEMORY_REQUESTS, memory_figures
from bench.world import COMPLIANCE_HANDLER, FUNCTIONS, lambda_context
from kuma_iam.compliance.service import build_tag_compliance
from kuma_iam.config import ComplianceSettings
from kuma_iam_cli.local.compliance_demo import ecs_trust
from kuma_iam_cli.local.compliance_events import ADMIN, tag_role
from kuma_iam_cli.local.gateway import load_handler
from kuma_iam_cli.local.seed import DemoWorld, compliance_environment
from support.fake_aws import Computed, FakeAws, PassThrough
from support.iam_listing import ListedRole, PagedRoles

SWEEP_SIZES = (2_000, 5_000)
SWEEP_ROUNDS = 3


def sweep_roles(account: str, count: int) -> list[ListedRole]:
    """`count` roles: a third well tagged, a third untagged, a third with bad tags (findings to make)."""
    tag_sets = (
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "team": "x"},
        {"team": "y"},
        {"kuma.io/type": "dataplnae", "Kuma.io/Mesh": "default"},
    )
    trust = ecs_trust(account)
    return [ListedRole(account, f"bench-{i:05d}", tag_sets[i % 3], trust) for i in range(count)]


def session_of(environment: dict[str, str], region: str) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        region_name=region,
    )


def measure_sweep(world: DemoWorld, count: int) -> list[Figure]:
    """One sweep of `count` roles against one bare listing of them through the same paging stand-in,
    alternately; IAM calls counted on the stand-in during each sweep."""
    environment = compliance_environment(world)
    roles = sweep_roles(world.home_account, count)
    session = session_of(environment, world.region)
    with FakeAws(name="bench-iam") as iam:
        iam.script(then=Computed(PagedRoles(roles, PassThrough(world.endpoint_url)).choose))
        settings = ComplianceSettings.from_env(
            environment
            | {"AWS_ENDPOINT_URL_IAM": iam.url, "KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS": world.home_account}
        )
        client = session.client("iam", endpoint_url=iam.url)
        compliance = build_tag_compliance(settings, session)
        calls: list[int] = []

        def bare_listing() -> None:
            pages = client.get_paginator("get_account_authorization_details").paginate(
                Filter=["Role"], PaginationConfig={"PageSize": 1000}
            )
            if sum(len(page["RoleDetailList"]) for page in pages) != count:
                raise AssertionError("the listing did not return every role")

        def sweep() -> None:
            iam.reset_requests()
            summary = compliance.sweep([world.home_account])
            calls.append(iam.count_by_service()["iam"])
            if summary.evaluated != count or summary.failed_accounts:
                raise AssertionError(f"the sweep evaluated {summary.evaluated} of {count} roles")

        swept, listed = interleaved(sweep, bare_listing, pairs=SWEEP_ROUNDS, warm_up=1)
    per_thousand = max(calls) / count * 1000
    details = {"sweep": swept.summary(), "listing": listed.summary(), "iam_calls_per_sweep": calls}
    return [
        Figure(
            "sweep",
            f"{count:,} roles, wall time (median)",
            swept.p50 * 1e3,
            "ms",
            "one bare paginated listing",
            listed.p50 * 1e3,
            at_most(1.5),
            details,
        ),
        Figure(
            "sweep",
            f"{count:,} roles, IAM calls per 1,000 roles",
            per_thousand,
            "calls",
            target=count_at_most(3),
            details=details,
        ),
    ]


def measure_events(world: DemoWorld) -> list[Figure]:
    """An event from the handler's call to its summary, warm and in a new container, against the one
    GetRole the handling needs (for the record: outputs and the idempotency record add their own calls)."""
    environment = compliance_environment(world)
    os.environ.update(environment)
    handler = load_handler(COMPLIANCE_HANDLER)
    module = sys.modules["tag_compliance"]
    iam = session_of(environment, world.region).client("iam", endpoint_url=world.endpoint_url)
    context = lambda_context(world, "TagComplianceFunction")

    def one_event() -> None:
        answer = handler(tag_role(ADMIN, "orders-task", {"kuma.io/service": "orders"}), context)
        if answer["evaluated"] != 1:
            raise AssertionError(f"the event was not evaluated: {answer}")

    def cold_event() -> None:
        module.compliance.cache_clear()
        one_event()

    warm, get_role = interleaved(one_event, lambda: iam.get_role(RoleName="orders-task"), pairs=30, warm_up=3)
    cold = Samples(tuple(timed_once(cold_event) for _ in range(5)))
    return [
        Figure(
            "tag compliance",
            "event to summary, warm (median)",
            warm.p50 * 1e3,
            "ms",
            "one iam:GetRole",
            get_role.p50 * 1e3,
            details={"event": warm.summary(), "get_role": get_role.summary()},
        ),
        Figure(
            "tag compliance",
            "event to summary, new container (median)",
            cold.p50 * 1e3,
            "ms",
            "one iam:GetRole",
            get_role.p50 * 1e3,
            details={"event": cold.summary()},
        ),
    ]


def measure_compliance_memory(world: DemoWorld, child: ChildPython) -> list[Figure]:
    """RSS of a container after 1,000 events (role tag changes, each re-read from IAM), and what the next
    1,000 add."""
    events = [
        tag_role(ADMIN, role, {"kuma.io/service": service})
        for role, service in (("orders-task", "orders"), ("backend-task", "backend"))
    ]
    spec = spec_file(
        {
            "folder": str(FUNCTIONS / "tag_compliance"),
            "events": events,
            "expect": "summary",
            "requests": MEMORY_REQUESTS,
        }
    )
    try:
        measured = child.run(
            CHILD, "memory", str(spec), environment=compliance_environment(world), timeout=900
        )
    finally:
        spec.unlink(missing_ok=True)
    return memory_figures("tag compliance", measured, None, "")
