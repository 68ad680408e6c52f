"""5,000 verifications from 16 threads through the gateway: zero wrong decisions, no 500, bounded memory.

The mix is fixed: genuine tokens of several roles and accounts (allowed), genuine tokens that must be denied,
hostile tokens refused before the network, and tampered signatures that only STS can refuse. Every answer
is compared with the expected one. Throughput and memory are printed for the record, not asserted as
absolute numbers; memory is asserted as growth after warm-up, which a per-request leak would break.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import urllib3
from _pytest.logging import LogCaptureHandler
from botocore.credentials import ReadOnlyCredentials

from kuma_iam.config import VerifierSettings
from kuma_iam.identity.token import SignedRequest, encode_compact, encode_vault
from kuma_iam.verify import VerifyRequest, build_verifier
from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.gateway import LocalGateway
from kuma_iam_cli.local.seed import DemoWorld
from kuma_iam_cli.signer import sign_api_call
from support.clock import ManualClock
from support.token_mutations import adding, flip_last, header, with_header
from support.upstream_timeouts import patient
from support.verifier_harness import signed_request

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

TOTAL = 5_000
THREADS = 16
WARM_UP = 1_000
TRACED = 500  # tracemalloc slows Python several times over: trace only the last slice
MAIN = TOTAL - WARM_UP - TRACED
# RSS is the allocator's view (arenas, fragmentation) and moto shares the process: a loose bound (about
# 5 MiB is usual). The tight one is what Python objects the traced slice leaves behind (about 200 KiB of
# scattered small objects is usual): under 1 KiB a request, less than one token kept per request.
MAX_RSS_GROWTH_BYTES = 12 * 1024 * 1024
MAX_RETAINED_BYTES = 512 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    token: object
    dataplane: dict[str, Any]
    status: int
    outcome: str  # "allowed:<role>", a deny reason, or an error code

    def judge(self, status: int, body: dict[str, Any]) -> str | None:
        """None when the answer is the expected one, else what was wrong."""
        if status != self.status:
            return f"status {status}, expected {self.status}: {body}"
        if self.outcome.startswith("allowed:"):
            role = self.outcome.split(":", 1)[1]
            if body.get("allowed") is not True or body["identity"]["roleName"] != role:
                return f"expected an allow for {role}: {body}"
            return None
        actual = body.get("reason") if status == 200 else body.get("error")
        if body.get("allowed") is True or actual != self.outcome:
            return f"expected {self.outcome}: {body}"
        return None


def build_cases(world: DemoWorld, server_id: str) -> list[Case]:
    def _sign(
        world: DemoWorld, account: str, role: str, session: str, *, at: datetime | None = None
    ) -> SignedRequest:
        return signed_request(world, account, role, server_id=server_id, session_name=session, at=at)

    home, partner, outsider = world.home_account, world.partner_account, world.outsider_account
    backend_claim = {"mesh": "default", "name": "backend-01", "tags": {"kuma.io/service": ["backend"]}}
    cases: list[Case] = []
    # genuine and allowed: several roles, a second account, both encodings, several sessions each
    for session in ("a", "b", "c"):
        backend = _sign(world, home, "backend-task", f"ecs-task-{session}")
        cases += [
            Case("backend", encode_compact(backend), backend_claim, 200, "allowed:backend-task"),
            Case("backend-vault", encode_vault(backend), backend_claim, 200, "allowed:backend-task"),
        ]
    cases += [
        Case(
            "frontend",
            encode_compact(_sign(world, home, "frontend-task", "ecs-task")),
            {"mesh": "default", "name": "frontend-01"},
            200,
            "allowed:frontend-task",
        ),
        Case(
            "ingress",
            encode_compact(_sign(world, home, "ingress-task", "ecs-task")),
            {"type": "ingress", "mesh": None, "name": "ingress-01"},
            200,
            "allowed:ingress-task",
        ),
        Case(
            "partner-payments",
            encode_compact(_sign(world, partner, "payments-task", "ecs-task")),
            {"mesh": "payments", "name": "payments-01", "tags": {"kuma.io/service": ["payments"]}},
            200,
            "allowed:payments-task",
        ),
        Case(
            "worker-workload",
            encode_vault(_sign(world, home, "worker-task", "ecs-task")),
            {
                "mesh": "default",
                "name": "worker-01",
                "workload": "worker",
                "tags": {"kuma.io/service": ["worker"]},
            },
            200,
            "allowed:worker-task",
        ),
    ]
    # genuine but denied
    backend = _sign(world, home, "backend-task", "ecs-task-d")
    cases += [
        Case(
            "mesh-mismatch",
            encode_compact(backend),
            {**backend_claim, "mesh": "payments"},
            200,
            "mesh_mismatch",
        ),
        Case(
            "service-mismatch",
            encode_compact(backend),
            {**backend_claim, "tags": {"kuma.io/service": ["frontend"]}},
            200,
            "service_mismatch",
        ),
        Case(
            "untrusted-account",
            encode_compact(_sign(world, outsider, "intruder-task", "ecs-task")),
            backend_claim,
            200,
            "account_not_authorized",
        ),
        Case(
            "untagged-role",
            encode_compact(_sign(world, home, "untagged-task", "ecs-task")),
            {"mesh": "default", "name": "x"},
            200,
            "invalid_role_tags",
        ),
    ]
    # hostile: refused before the network
    url = "https://sts.us-east-1.amazonaws.com.evil.com/"
    cases += [
        Case("host-evil", encode_compact(replace(backend, url=url)), backend_claim, 400, "invalid_request"),
        Case(
            "method-get",
            encode_compact(replace(backend, method="GET")),
            backend_claim,
            400,
            "invalid_request",
        ),
        Case(
            "body-assume-role",
            encode_vault(replace(backend, body="Action=AssumeRole&Version=2011-06-15")),
            backend_claim,
            400,
            "invalid_request",
        ),
        Case(
            "server-id-other",
            encode_compact(with_header(backend, "X-Kuma-AWS-IAM-Server-ID", "other-cp")),
            backend_claim,
            400,
            "invalid_request",
        ),
        Case("bad-base64", encode_compact(backend)[:-7] + "!!!!!!!", backend_claim, 400, "invalid_request"),
        Case(
            "header-not-allowed",
            encode_vault(adding(backend, ("X-Amz-Target", "x"))),
            backend_claim,
            400,
            "invalid_request",
        ),
        Case("oversized", "kuma-aws-v1." + "A" * 20_000, backend_claim, 400, "invalid_request"),
        Case(
            "expired",
            encode_compact(
                _sign(world, home, "backend-task", "ecs-task-old", at=datetime.now(UTC) - timedelta(hours=1))
            ),
            backend_claim,
            200,
            "token_expired",
        ),
        Case("not-json", "{", backend_claim, 400, "invalid_request"),
    ]
    # tampered: well-formed, only STS can refuse it
    tampered = flip_last(header(backend, "Authorization"))
    cases.append(
        Case(
            "signature-tampered",
            encode_compact(with_header(backend, "Authorization", tampered)),
            backend_claim,
            200,
            "sts_rejected",
        )
    )
    return cases


class GatewayClient:
    """The control plane: POST /v1/verify, SigV4-signed for execute-api with its own key."""

    def __init__(self, url: str, world: DemoWorld) -> None:
        user = world.control_plane
        self._url = url
        self._credentials = ReadOnlyCredentials(user.access_key_id, user.secret_access_key, None)
        self._region = world.region
        self._http = urllib3.PoolManager(maxsize=THREADS, retries=False, timeout=urllib3.Timeout(total=30))

    def verify(self, token: object, dataplane: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        body = json.dumps({"token": token, "dataplane": dataplane}).encode()
        headers = sign_api_call(self._credentials, url=self._url, body=body, region=self._region)
        response = self._http.request("POST", self._url, body=body, headers=headers)
        try:
            return response.status, json.loads(response.data or b"{}")
        except ValueError:
            return response.status, {"raw": response.data[:200].decode("utf-8", "replace")}


def percentile(sorted_seconds: list[float], percent: int) -> float:
    return sorted_seconds[min(len(sorted_seconds) - 1, len(sorted_seconds) * percent // 100)] * 1000


def rss_bytes() -> int:
    with Path("/proc/self/statm").open() as statm:
        return int(statm.read().split()[1]) * 4096


@dataclass
class Run:
    statuses: Counter[int]
    wrong: list[str]
    latencies: list[float]
    seconds: float


def run(
    cases: list[Case], count: int, offset: int, call: Callable[[Case], tuple[int, dict[str, Any]]]
) -> Run:
    statuses: Counter[int] = Counter()
    wrong: list[str] = []
    latencies: list[float] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        case = cases[(offset + index) % len(cases)]
        started = time.perf_counter()
        status, body = call(case)
        elapsed = time.perf_counter() - started
        problem = case.judge(status, body)
        with lock:
            statuses[status] += 1
            latencies.append(elapsed)
            if problem:
                wrong.append(f"{case.name}: {problem}")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(one, range(count)))
    return Run(statuses, wrong, latencies, time.perf_counter() - started)


@contextmanager
def log_records_not_kept_by_pytest() -> Iterator[None]:
    """pytest keeps every log record of a test in memory for its report; over 5,000 requests that is megabytes
    that are not the verifier's. The verifier still logs as always (to stdout); pytest's copy is paused."""
    root = logging.getLogger()
    kept = [(h, h.level) for h in root.handlers if isinstance(h, LogCaptureHandler)]
    for handler, _ in kept:
        handler.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for handler, level in kept:
            handler.setLevel(level)


def report(config: pytest.Config, text: str) -> None:
    """Straight to the terminal: capturing the run's output in memory would itself look like a leak."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(text)


def test_five_thousand_verifications_from_sixteen_threads(
    load_world: tuple[EmbeddedAws, DemoWorld],
    verifier_behind_gateway: tuple[LocalGateway, ModuleType],
    server_id: str,
    pytestconfig: pytest.Config,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, world = load_world
    gateway, module = verifier_behind_gateway
    cases = build_cases(world, server_id)
    # The verifier's clock stays where the cases were signed: on a loaded machine 5,000 verifications may take
    # longer than a token's 15 minutes, and a token's age is not what this test is about.
    monkeypatch.setattr(module.verifier(), "clock", clock)
    client = GatewayClient(f"{gateway.endpoint_url}/v1/verify", world)

    def call(case: Case) -> tuple[int, dict[str, Any]]:
        return client.verify(case.token, case.dataplane)

    with log_records_not_kept_by_pytest():
        # Given a warm verifier (caches and connection pools filled, as in a warm Lambda container)
        warm = run(cases, WARM_UP, 0, call)
        gc.collect()
        rss_after_warm_up = rss_bytes()
        # When the rest of the 5,000 verifications arrive from 16 threads, the last of them traced
        main = run(cases, MAIN, WARM_UP, call)
        gc.collect()
        rss_growth = rss_bytes() - rss_after_warm_up
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        traced = run(cases, TRACED, WARM_UP + MAIN, call)
        gc.collect()
        after = tracemalloc.take_snapshot()
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    retained = sum(stat.size_diff for stat in after.compare_to(before, "filename"))

    # Then every answer is the expected one, none is a 500, and memory stayed flat
    runs = (warm, main, traced)
    statuses = sum((r.statuses for r in runs), Counter[int]())
    wrong = [problem for r in runs for problem in r.wrong]
    latencies = sorted(latency for r in runs for latency in r.latencies)
    seconds = sum(r.seconds for r in runs)
    mix = Counter(case.outcome.split(":")[0] for case in cases)
    report(
        pytestconfig,
        f"\nload: {TOTAL} verifications, {THREADS} threads, {len(cases)} distinct cases {dict(mix)}\n"
        f"  throughput {TOTAL / seconds:.0f}/s over {seconds:.1f}s (warm: {MAIN / main.seconds:.0f}/s)\n"
        f"  latency p50 {percentile(latencies, 50):.1f} ms, p95 {percentile(latencies, 95):.1f} ms, "
        f"p99 {percentile(latencies, 99):.1f} ms\n"
        f"  statuses {dict(statuses)}; wrong decisions {len(wrong)}\n"
        f"  RSS {rss_after_warm_up / 2**20:.1f} MiB after warm-up, {rss_growth / 2**20:+.2f} MiB over the "
        f"next {MAIN}; traced {TRACED}: peak {traced_peak / 2**20:.2f} MiB, "
        f"retained {retained / 1024:+.0f} KiB",
    )
    assert wrong == [], wrong[:5]
    assert 500 not in statuses
    assert sum(statuses.values()) == TOTAL
    assert rss_growth < MAX_RSS_GROWTH_BYTES
    assert retained < MAX_RETAINED_BYTES


def test_one_verifier_shared_by_sixteen_threads(
    load_world: tuple[EmbeddedAws, DemoWorld],
    verifier_behind_gateway: tuple[LocalGateway, ModuleType],
    server_id: str,
    pytestconfig: pytest.Config,
    clock: ManualClock,
) -> None:
    """The core without the handler: Lambda never runs one container's invocations at once, but the role
    cache promises that concurrent misses for one role wait on a single IAM call, and the issuer reuses it."""
    _, world = load_world
    cases = build_cases(world, server_id)
    # Given one verifier built from the settings, whose IAM GetRole calls are counted
    session = boto3.Session(region_name=world.region)
    get_role_calls: Counter[str] = Counter()
    lock = threading.Lock()

    def count(params: dict[str, Any], **_: Any) -> None:
        with lock:
            get_role_calls[params["RoleName"]] += 1

    session.events.register("provide-client-params.iam.GetRole", count)
    # Cached for an hour, on the clock where the cases were signed, and patient with moto: "read once" and
    # every decision must not depend on how long 2,000 verifications take on a loaded machine.
    environment = {**os.environ, "KUMA_IAM_ROLE_CACHE_TTL_SECONDS": "3600"}
    verifier = build_verifier(patient(VerifierSettings.from_env(environment), environment), session)
    verifier.clock = clock
    requests = {
        id(case): VerifyRequest.model_validate({"token": case.token, "dataplane": case.dataplane})
        for case in cases
        if case.status == 200
    }
    shared = [case for case in cases if case.status == 200]

    def call(case: Case) -> tuple[int, dict[str, Any]]:
        return 200, verifier.verify(requests[id(case)]).body()

    # When 2,000 verifications run on it from 16 threads at once
    with log_records_not_kept_by_pytest():
        result = run(shared, 2_000, 0, call)
    # Then every decision is right, and each role was read from IAM exactly once
    roles_read = {
        case.outcome.removeprefix("allowed:") for case in shared if case.outcome.startswith("allowed:")
    }
    report(
        pytestconfig,
        f"core shared by {THREADS} threads: 2000 verifications in {result.seconds:.1f}s "
        f"({2000 / result.seconds:.0f}/s), wrong {len(result.wrong)}, GetRole calls {dict(get_role_calls)}",
    )
    assert result.wrong == [], result.wrong[:5]
    assert roles_read <= set(get_role_calls)
    assert all(calls == 1 for calls in get_role_calls.values()), get_role_calls
