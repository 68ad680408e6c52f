"""Benchmarks of the verifier, of tag compliance and of the token issuer as ratios against a baseline measured
in the same run:
`make bench`.

Absolute timings say more about the machine than about the code, so every row divides two measurements
taken here, now, the same way: the pre-network checks against a plain json.loads of the same token, a
cached verification against a cold one, a refusal against an allow, the handler's import against boto3's,
the memory a warm verifier holds against boto3 alone; a compliance sweep of 2,000 and 5,000 roles against one
bare paginated GetAccountAuthorizationDetails listing of the same roles, and an event's handling against the
one GetRole it needs; tokens per second of each signer (a Kuma PEM key, KMS on moto) against raw RS256 signing
of the same claims and a bare kms:Sign. Runs on the embedded AWS (moto server); IAM's paging comes from a
stand-in (tests/support/iam_listing.py: moto answers the listing in one page).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
from botocore.credentials import ReadOnlyCredentials
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from kuma_iam.compliance.service import build_tag_compliance
from kuma_iam.config import ComplianceSettings, TokenIssuerSettings, VerifierSettings
from kuma_iam.errors import InvalidRequest
from kuma_iam.identity.checks import check_signed_request
from kuma_iam.identity.token import COMPACT_PREFIX, decode_token, encode_compact
from kuma_iam.observability import logger
from kuma_iam.tokens import jwt
from kuma_iam.tokens.binding import ApiCaller
from kuma_iam.tokens.claims import DataplaneIdentity, RegisteredClaims, token_claims
from kuma_iam.tokens.issuer import TokenRequest, build_minter, build_token_issuer
from kuma_iam.verify import IdentityVerifier, VerifyRequest, build_verifier
from kuma_iam_cli.local.compliance_demo import ecs_trust
from kuma_iam_cli.local.compliance_events import ADMIN, tag_role
from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.gateway import LocalLambdaContext, load_handler
from kuma_iam_cli.local.seed import (
    DemoWorld,
    compliance_environment,
    seed_demo_world,
    task_caller,
    task_credentials,
    verifier_environment,
)
from kuma_iam_cli.local.token_keys import TokenKeys, seed_token_keys, token_issuer_environment
from kuma_iam_cli.signer import sign_identity_request
from support.fake_aws import Computed, FakeAws, PassThrough
from support.iam_listing import ListedRole, PagedRoles

REPO = Path(__file__).resolve().parents[1]
HANDLER = REPO / "functions" / "verifier" / "app.py"
SERVER_ID = "kuma-bench"
CLAIM = {"mesh": "default", "name": "backend-01", "tags": {"kuma.io/service": ["backend"]}}


@dataclass(frozen=True)
class Row:
    what: str
    measured: float
    baseline_name: str
    baseline: float
    unit: str

    @property
    def ratio(self) -> float:
        return self.measured / self.baseline


def per_call(fn: Callable[[], object], *, number: int, repeat: int = 5) -> float:
    """Best of `repeat` runs of `number` calls, per call: the least disturbed measurement."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - started) / number)
    return best


def in_subprocess(code: str, *args: str, runs: int = 5) -> dict[str, float]:
    """Median of each number a fresh interpreter prints as JSON: import time and peak RSS start from zero."""
    results: list[dict[str, float]] = []
    for _ in range(runs):
        output = subprocess.run(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, cwd=REPO
        ).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


# Peak RSS from /proc (VmHWM): ru_maxrss of a child also counts what its parent held when it forked.
PEAK_RSS = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"

IMPORT_BOTO3 = f"""
import json, time
started = time.perf_counter()
import boto3
boto3.Session().client("sts", region_name="us-east-1")
print(json.dumps({{"seconds": time.perf_counter() - started, "peak_kib": {PEAK_RSS}}}))
"""

# The handler's cold start: import, then (on the first request) the verifier and its clients.
IMPORT_HANDLER = f"""
import importlib.util, json, os, sys, time
os.environ.update(json.loads(sys.argv[2]))
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("verifier", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["verifier"] = module
spec.loader.exec_module(module)
imported = time.perf_counter()
module.verifier()
built = time.perf_counter()
print(json.dumps({{"seconds": imported - started, "with_verifier": built - started, "peak_kib": {PEAK_RSS}}}))
"""

WARM_VERIFIER = f"""
import json, os, sys
os.environ.update(json.loads(sys.argv[1]))
from kuma_iam.verify import VerifyRequest, verifier_from_env
verifier = verifier_from_env(os.environ)
request = VerifyRequest.model_validate(json.loads(sys.argv[2]))
for _ in range(200):
    assert verifier.verify(request).allowed
print(json.dumps({{"peak_kib": {PEAK_RSS}}}))
"""


def sign(world: DemoWorld, role: str = "backend-task", session: str = "bench") -> str:
    issued = task_credentials(world, world.home_account, role, session_name=session)
    credentials = ReadOnlyCredentials(
        issued["AWS_ACCESS_KEY_ID"], issued["AWS_SECRET_ACCESS_KEY"], issued["AWS_SESSION_TOKEN"]
    )
    return encode_compact(sign_identity_request(credentials, server_id=SERVER_ID, region=world.region))


def fresh_verifier(environment: dict[str, str]) -> IdentityVerifier:
    session = boto3.Session(
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        region_name=environment["AWS_REGION"],
    )
    return build_verifier(VerifierSettings.from_env(environment), session)


def fresh_request(world: DemoWorld) -> VerifyRequest:
    """A request with a token signed now: each section signs its own, so a slow run never measures a token
    that has grown too old."""
    return VerifyRequest.model_validate({"token": sign(world), "dataplane": CLAIM})


def measure_tokens(world: DemoWorld, keys: TokenKeys) -> tuple[list[Row], list[tuple[str, float]]]:
    """Tokens per second of each signer, against raw RS256 signing of the very same signing input."""
    environment = token_issuer_environment(world, keys, server_id=SERVER_ID)
    session = boto3.Session(
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        region_name=environment["AWS_REGION"],
    )
    identity = DataplaneIdentity(name="backend-01", mesh="default", services=("backend",))
    one_hour = timedelta(hours=1)

    def minter(signing_keys: str) -> Callable[[], object]:
        settings = TokenIssuerSettings.from_env({**environment, "KUMA_IAM_SIGNING_KEYS": signing_keys})
        built = build_minter(settings, session, timeout_seconds=2.5, dynamodb_endpoint_url=world.endpoint_url)
        built.mint(identity, one_hour)  # keys loaded: a warm container
        return lambda: built.mint(identity, one_hour)

    mint_pem = minter(f"1={keys.pem_secret_arn}")
    mint_kms = minter(f"1={keys.dataplane_key_alias}")
    message = jwt.signing_input(
        "1", token_claims(identity, RegisteredClaims.starting("bench", datetime.now(UTC), one_hour))
    )
    private_key = serialization.load_pem_private_key(keys.pem.encode(), password=None)
    assert isinstance(private_key, RSAPrivateKey)
    kms = session.client("kms", endpoint_url=world.endpoint_url)

    raw_sign = per_call(lambda: private_key.sign(message, padding.PKCS1v15(), hashes.SHA256()), number=200)
    bare_kms = per_call(
        lambda: kms.sign(
            KeyId=keys.dataplane_key_alias,
            Message=message,
            MessageType="RAW",
            SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256",
        ),
        number=50,
    )
    pem = per_call(mint_pem, number=50)
    kms_mint = per_call(mint_kms, number=50)

    # The whole exchange on a warm issuer (STS forward, role cached, revocation check, PEM signer) against
    # a warm verification of the same identity.
    settings = TokenIssuerSettings.from_env(
        {**environment, "KUMA_IAM_SIGNING_KEYS": f"1={keys.pem_secret_arn}"}
    )
    issuer = build_token_issuer(settings, session)
    credentials, caller = task_caller(world, world.home_account, "backend-task", "bench")
    api_caller = ApiCaller(caller.account_id, caller.user_arn, caller.user_id)
    identity_token = encode_compact(
        sign_identity_request(
            ReadOnlyCredentials(
                credentials["AWS_ACCESS_KEY_ID"],
                credentials["AWS_SECRET_ACCESS_KEY"],
                credentials["AWS_SESSION_TOKEN"],
            ),
            server_id=SERVER_ID,
            region=world.region,
        )
    )
    token_request = TokenRequest.model_validate({"token": identity_token, "dataplane": CLAIM})
    issuer.exchange(token_request, api_caller)
    exchange = per_call(lambda: issuer.exchange(token_request, api_caller), number=30)
    verify_request = VerifyRequest.model_validate({"token": identity_token, "dataplane": CLAIM})
    verifier = issuer.verifier
    verified = per_call(lambda: verifier.verify(verify_request), number=30)

    rows = [
        Row("mint, PEM signer (+ revocation read)", pem, "raw RS256 sign, same claims", raw_sign, "ms"),
        Row("mint, KMS signer on moto", kms_mint, "raw RS256 sign, same claims", raw_sign, "ms"),
        Row("mint, KMS signer on moto", kms_mint, "bare kms:Sign on moto", bare_kms, "ms"),
        Row("exchange, warm (PEM signer)", exchange, "verify, warm, same identity", verified, "ms"),
    ]
    rates = [
        ("raw RS256 sign (cryptography)", 1 / raw_sign),
        ("bare kms:Sign (moto server)", 1 / bare_kms),
        ("mint, PEM signer", 1 / pem),
        ("mint, KMS signer (moto server)", 1 / kms_mint),
        ("exchange, warm, PEM signer", 1 / exchange),
    ]
    return rows, rates


def measure(world: DemoWorld) -> list[Row]:
    # A role stays cached for the whole run (an hour at most), however slow the machine: "cached" means it.
    environment = {
        **verifier_environment(world, server_id=SERVER_ID),
        "KUMA_IAM_ROLE_CACHE_TTL_SECONDS": "3600",
    }
    os.environ.update(environment)
    token = sign(world)
    raw = token.removeprefix(COMPACT_PREFIX)
    document = json.dumps(json.loads(_b64url(raw))).encode()
    signed = decode_token(token)
    policy = fresh_verifier(environment).policy
    now = datetime.now(UTC)
    rows: list[Row] = []

    # 1. the pre-network checks, against the least any reader of the token must do
    json_loads = per_call(lambda: json.loads(document), number=5_000)
    decode = per_call(lambda: decode_token(token), number=5_000)
    checks = per_call(lambda: check_signed_request(signed, policy, now), number=5_000)
    rows += [
        Row("decode_token (compact)", decode, "json.loads of its JSON", json_loads, "µs"),
        Row("check_signed_request", checks, "json.loads of its JSON", json_loads, "µs"),
        Row("decode + checks", decode + checks, "json.loads of its JSON", json_loads, "µs"),
    ]

    # 2. a refusal before the network, and a cached allow, against a cold allow
    request = fresh_request(world)
    warm = fresh_verifier(environment)
    assert warm.verify(request).allowed
    cached = per_call(lambda: warm.verify(request), number=100)
    hostile = VerifyRequest.model_validate(
        {"token": encode_compact(replace(signed, url="https://evil.example/")), "dataplane": CLAIM}
    )
    refused = per_call(lambda: _refuse(warm, hostile), number=2_000)

    def cold() -> None:
        verifier = fresh_verifier(environment)
        assert verifier.verify(request).allowed

    cold_allow = per_call(cold, number=10, repeat=3)
    rows += [
        Row("verify, role cached (STS call)", cached, "verify, cold (new clients + IAM)", cold_allow, "ms"),
        Row("refusal before the network", refused, "verify, role cached", cached, "ms"),
    ]

    # 3. cold start: the handler's import (and first verifier) against importing boto3 and making one client
    boto3_alone = in_subprocess(IMPORT_BOTO3)
    handler = in_subprocess(IMPORT_HANDLER, str(HANDLER), json.dumps(environment))
    baseline = "import boto3 + 1 client"
    rows += [
        Row("import functions/verifier/app.py", handler["seconds"], baseline, boto3_alone["seconds"], "ms"),
        Row("import + build verifier", handler["with_verifier"], baseline, boto3_alone["seconds"], "ms"),
    ]

    # 4. memory: peak RSS of the imported handler, and of a verifier after 200 allows, against boto3 alone
    request = fresh_request(world)
    warm_rss = in_subprocess(WARM_VERIFIER, json.dumps(environment), request.model_dump_json(), runs=3)
    baseline_kib = boto3_alone["peak_kib"]
    rows += [
        Row("peak RSS, handler imported", handler["peak_kib"], "boto3 + 1 client", baseline_kib, "MiB"),
        Row(
            "peak RSS, warm verifier (200 allows)",
            warm_rss["peak_kib"],
            "boto3 + 1 client",
            baseline_kib,
            "MiB",
        ),
    ]
    return rows


SWEEP_SIZES = (2_000, 5_000)
COMPLIANCE_HANDLER = REPO / "functions" / "tag_compliance" / "app.py"


@dataclass(frozen=True)
class Note:
    """A measured count (not a ratio) printed under the table."""

    what: str
    value: str


def sweep_roles(count: int) -> list[ListedRole]:
    """`count` roles of the home account: a third well tagged, a third untagged, a third with bad tags."""
    tag_sets = (
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "team": "x"},
        {"team": "y"},
        {"kuma.io/type": "dataplnae", "Kuma.io/Mesh": "default"},
    )
    trust = ecs_trust("111111111111")
    return [ListedRole("111111111111", f"bench-{i:05d}", tag_sets[i % 3], trust) for i in range(count)]


def measure_sweep(world: DemoWorld, environment: dict[str, str], count: int) -> tuple[Row, Note]:
    """One sweep of `count` roles against one bare listing of them, through the same paging IAM stand-in."""
    roles = sweep_roles(count)
    session = boto3.Session(
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        region_name=world.region,
    )
    with FakeAws(name="bench-iam") as iam:
        iam.script(then=Computed(PagedRoles(roles, PassThrough(world.endpoint_url)).choose))
        settings = ComplianceSettings.from_env(
            environment
            | {"AWS_ENDPOINT_URL_IAM": iam.url, "KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS": world.home_account}
        )
        client = session.client("iam", endpoint_url=iam.url)
        compliance = build_tag_compliance(settings, session)

        def bare_listing() -> None:
            pages = client.get_paginator("get_account_authorization_details").paginate(
                Filter=["Role"], PaginationConfig={"PageSize": 1000}
            )
            assert sum(len(page["RoleDetailList"]) for page in pages) == count

        def sweep() -> None:
            summary = compliance.sweep([world.home_account])
            assert summary.evaluated == count
            assert not summary.failed_accounts

        listing_time = per_call(bare_listing, number=1, repeat=3)
        iam.reset_requests()
        sweep_time = per_call(sweep, number=1, repeat=3)
        calls = iam.count_by_service()["iam"] // 3
    row = Row(f"sweep, {count:,} roles", sweep_time, "bare paginated listing", listing_time, "ms")
    return row, Note(f"sweep of {count:,} roles", f"{sweep_time * 1000:.0f} ms, {calls} IAM calls")


def measure_compliance(world: DemoWorld) -> tuple[list[Row], list[Note]]:
    """Sweep time and IAM calls for 2,000 and 5,000 roles; one event, from the handler to its summary."""
    environment = compliance_environment(world)
    rows: list[Row] = []
    notes: list[Note] = []
    for count in SWEEP_SIZES:
        row, note = measure_sweep(world, environment, count)
        rows.append(row)
        notes.append(note)

    # An event, from the handler's call to its summary, against the one GetRole the handling needs.
    os.environ.update(environment)
    handler = load_handler(COMPLIANCE_HANDLER)
    module = sys.modules["tag_compliance"]
    iam = boto3.Session(
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        region_name=world.region,
    ).client("iam", endpoint_url=world.endpoint_url)
    context = LocalLambdaContext(
        function_name="TagComplianceFunction",
        aws_request_id="bench",
        region=world.region,
        account_id=world.home_account,
    )

    def one_event() -> None:
        answer = handler(tag_role(ADMIN, "orders-task", {"kuma.io/service": "orders"}), context)
        assert answer["evaluated"] == 1

    def cold_event() -> None:
        module.compliance.cache_clear()
        one_event()

    get_role = per_call(lambda: iam.get_role(RoleName="orders-task"), number=20)
    warm = per_call(one_event, number=20)
    cold = per_call(cold_event, number=5, repeat=3)
    rows += [
        Row("event to summary, warm", warm, "one iam:GetRole", get_role, "ms"),
        Row("event to summary, new container", cold, "one iam:GetRole", get_role, "ms"),
    ]
    notes.append(
        Note("event to summary", f"{warm * 1000:.0f} ms warm, {cold * 1000:.0f} ms in a new container")
    )
    return rows, notes


def _refuse(verifier: IdentityVerifier, request: VerifyRequest) -> None:
    try:
        verifier.verify(request)
    except InvalidRequest:
        return
    raise AssertionError("the hostile token was not refused")


def _b64url(raw: str) -> bytes:
    return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))


def _ratio(value: float) -> str:
    return f"{value:.2f}x" if value >= 0.1 else f"1/{1 / value:.0f}"


def print_table(rows: list[Row], notes: Sequence[Note] = ()) -> None:
    scale = {"µs": 1e6, "ms": 1e3, "MiB": 1 / 1024}
    print(f"{'measured':<36} {'baseline':<34} {'ratio':>8}   (this machine: measured / baseline)")
    for row in rows:
        factor = scale[row.unit]
        print(
            f"{row.what:<36} {row.baseline_name:<34} {_ratio(row.ratio):>8}"
            f"   ({row.measured * factor:.2f} / {row.baseline * factor:.2f} {row.unit})"
        )
    for note in notes:
        print(f"  {note.what}: {note.value}")


def main() -> int:
    started = time.perf_counter()
    # The verifier logs and emits metrics as it always does; only where they go changes, so the table stays
    # readable.
    with EmbeddedAws() as aws, open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(devnull)
        world = seed_demo_world(aws)
        keys = seed_token_keys(aws, world)
        aws.enable_signature_checks()
        rows = measure(world)
        compliance_rows, notes = measure_compliance(world)
        token_rows, rates = measure_tokens(world, keys)
    print_table(rows + compliance_rows + token_rows, notes)
    print("\ntokens (or signatures) per second, one thread, this machine:")
    for what, rate in rates:
        print(f"  {what:<36} {rate:8.0f}/s")
    print(f"({time.perf_counter() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
