"""The token exchange on the embedded AWS: real handler, real task-role credentials, KMS and Secrets Manager
on moto server with SigV4 on; every token is judged by an independent validator of Kuma's rules with the
public keys GET /v1/keys publishes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kuma_iam_cli.local.gateway import GatewayCaller, LocalLambdaContext
from kuma_iam_cli.local.seed import (
    HOME_ACCOUNT,
    OUTSIDER_ACCOUNT,
    PARTNER_ACCOUNT,
    DemoWorld,
    control_plane_caller,
)
from kuma_iam_cli.local.token_keys import TokenKeys
from support.aws_clients import ClientFactory
from support.fake_aws import FakeAws
from support.kuma_rules import (
    Rejected,
    dataplane_keys_for,
    parse_and_verify,
    validate_dataplane_token,
    validate_zone_token,
    zone_keys_for,
)
from support.token_issuer_harness import BACKEND_CLAIM, IssuerAnswer, TokenIssuer
from support.verifier_harness import TokenFactory

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning"),
]

Session = Callable[..., tuple[dict[str, str], GatewayCaller]]
BACKEND_TAGS = {"kuma.io/service": ["backend"]}


def claim(mesh: str | None = "default", *services: str, name: str = "dp-01", **more: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"mesh": mesh, "name": name, **more}
    if services:
        spec["tags"] = {"kuma.io/service": list(services)}
    return spec


@pytest.fixture
def exchange(
    issuer: TokenIssuer, task_session: Session, sign_with: TokenFactory
) -> Callable[..., IssuerAnswer]:
    """exchange(account, role, dataplane, *, caller=<the same session>, encoding, **body fields): the task
    signs its identity and calls the issuer with the same credentials, as `kuma-iam dataplane-token` does."""

    def run(
        account: str,
        role: str,
        dataplane: dict[str, Any] | None = None,
        *,
        caller: GatewayCaller | str | None = "self",
        encoding: str = "compact",
        **fields: Any,
    ) -> IssuerAnswer:
        credentials, own = task_session(account, role)
        token = sign_with(credentials, encoding=encoding)
        return issuer.exchange(token, dataplane, caller=own if caller == "self" else caller, **fields)  # type: ignore[arg-type]

    return run


@pytest.fixture
def published(issuer: TokenIssuer, demo_world: DemoWorld) -> Callable[[], dict[str, Any]]:
    """GET /v1/keys as the control plane's operator would call it."""

    def read() -> dict[str, Any]:
        answer = issuer.keys(control_plane_caller(demo_world))
        assert answer.status == 200, answer.body
        return answer.body

    return read


def assert_issued(answer: IssuerAnswer) -> dict[str, Any]:
    assert answer.status == 200, answer.body
    assert set(answer.body) == {"token", "kid", "jti", "expiresAt"}
    return answer.body


# --- tokens a stock control plane accepts ---------------------------------------------------------------


@pytest.mark.parametrize("signer", ["kms", "pem"])
def test_a_token_from_either_signer_passes_kumas_rules_with_the_published_key(
    signer: str,
    exchange: Callable[..., IssuerAnswer],
    published: Callable[[], dict[str, Any]],
    reconfigure_issuer: Callable[..., None],
    token_keys: TokenKeys,
) -> None:
    # Given an issuer whose one key is the KMS key, or the Kuma PEM key in Secrets Manager
    location = token_keys.dataplane_key_alias if signer == "kms" else token_keys.pem_secret_arn
    reconfigure_issuer(KUMA_IAM_SIGNING_KEYS=f"1={location}")
    # When the backend task exchanges its identity for a token
    before = time.time()
    body = assert_issued(
        exchange(HOME_ACCOUNT, "backend-task", claim("default", "backend", name="backend-01"))
    )
    # Then a control plane configured from GET /v1/keys admits backend-01 of mesh default with it
    keys = dataplane_keys_for(published(), "default")
    claims = validate_dataplane_token(
        body["token"], keys, now=time.time(), mesh="default", name="backend-01", tags=BACKEND_TAGS
    )
    # And the claims are exactly the role's tags and the request, with Kuma's registered claims
    assert claims == {
        "Name": "backend-01",
        "Mesh": "default",
        "Tags": {"kuma.io/service": ["backend"]},
        "Type": "dataplane",
        "jti": body["jti"],
        "iat": claims["iat"],
        "nbf": claims["iat"],
        "exp": claims["exp"],
    }
    assert body["kid"] == "1"
    assert before - 600 < claims["nbf"] < before - 60, "nbf is back-dated a few minutes"
    assert abs(claims["exp"] - (before + 3600)) < 30, "the default lifetime is an hour"
    assert body["expiresAt"] == datetime.fromtimestamp(claims["exp"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # And an hour later (the token's exp) the control plane refuses it
    with pytest.raises(Rejected, match="expired"):
        parse_and_verify(body["token"], keys, now=claims["exp"])


@pytest.mark.parametrize(
    ("account", "role", "dataplane", "expected"),
    [
        (HOME_ACCOUNT, "frontend-task", claim("default", "web"), {"Tags": {"kuma.io/service": ["web"]}}),
        (
            HOME_ACCOUNT,
            "frontend-task",
            claim("default", "web", "web-api", "web"),
            {"Tags": {"kuma.io/service": ["web", "web-api"]}},
        ),
        (HOME_ACCOUNT, "frontend-task", claim("default"), {"Tags": {}}),
        (
            HOME_ACCOUNT,
            "worker-task",
            claim("default", "worker", workload="worker"),
            {"Tags": {"kuma.io/service": ["worker"]}, "Workload": "worker"},
        ),
        (
            PARTNER_ACCOUNT,
            "payments-task",
            claim("payments", "payments"),
            {"Mesh": "payments", "Tags": {"kuma.io/service": ["payments"]}},
        ),
    ],
    ids=["asked-service", "asked-services-once-each", "mesh-wide", "workload", "partner-account-mesh"],
)
def test_the_token_carries_exactly_what_the_role_and_request_allow(
    account: str,
    role: str,
    dataplane: dict[str, Any],
    expected: dict[str, Any],
    exchange: Callable[..., IssuerAnswer],
    published: Callable[[], dict[str, Any]],
) -> None:
    body = assert_issued(exchange(account, role, dataplane))
    mesh = dataplane["mesh"]
    claims = parse_and_verify(body["token"], dataplane_keys_for(published(), mesh), now=time.time())
    identity = {key: value for key, value in claims.items() if key[0].isupper()}
    assert identity == {"Name": "dp-01", "Mesh": "default", "Type": "dataplane", **expected}


@pytest.mark.parametrize("proxy", ["ingress", "egress"])
def test_a_zone_proxy_role_gets_a_zone_token_for_its_scope_only(
    proxy: str,
    exchange: Callable[..., IssuerAnswer],
    published: Callable[[], dict[str, Any]],
    token_keys: TokenKeys,
) -> None:
    # When the zone ingress (or egress) task exchanges its identity, naming the issuer's zone
    body = assert_issued(
        exchange(HOME_ACCOUNT, f"{proxy}-task", {"type": proxy, "name": f"{proxy}-01"}, zone=token_keys.zone)
    )
    keys = published()
    # Then the zone's control plane admits it as that zone proxy, with the zone-token keys
    claims = validate_zone_token(
        body["token"], zone_keys_for(keys), now=time.time(), zone=token_keys.zone, scope=proxy
    )
    assert {key: value for key, value in claims.items() if key[0].isupper()} == {
        "Zone": token_keys.zone,
        "Scope": [proxy],
    }
    # And not as the other kind of zone proxy
    other = "egress" if proxy == "ingress" else "ingress"
    with pytest.raises(Rejected, match="out of the token's scope"):
        validate_zone_token(
            body["token"], zone_keys_for(keys), now=time.time(), zone=token_keys.zone, scope=other
        )
    # And never as a dataplane: the dataplane keys (kid 1 there too) are other keys
    with pytest.raises(Rejected, match="signature is invalid"):
        parse_and_verify(body["token"], dataplane_keys_for(keys, "default"), now=time.time())


def test_the_vault_encoding_is_exchanged_too(exchange: Callable[..., IssuerAnswer]) -> None:
    assert_issued(exchange(HOME_ACCOUNT, "backend-task", BACKEND_CLAIM, encoding="vault"))


# --- refusals --------------------------------------------------------------------------------------------

REFUSALS = [
    (
        "mesh-mismatch",
        HOME_ACCOUNT,
        "backend-task",
        claim("payments", "backend"),
        {},
        "mesh_mismatch",
        "mesh 'default'",
    ),
    (
        "mesh-not-served",
        HOME_ACCOUNT,
        "backend-task",
        claim("billing", "backend"),
        {},
        "mesh_mismatch",
        "signs for meshes",
    ),
    (
        "service-mismatch",
        HOME_ACCOUNT,
        "backend-task",
        claim("default", "frontend"),
        {},
        "service_mismatch",
        "'backend' only",
    ),
    ("service-missing", HOME_ACCOUNT, "backend-task", claim("default"), {}, "service_mismatch", "must carry"),
    (
        "type-mismatch-dataplane-as-ingress",
        HOME_ACCOUNT,
        "backend-task",
        {"type": "ingress", "name": "in-01"},
        {},
        "type_mismatch",
        "type dataplane",
    ),
    (
        "type-mismatch-ingress-as-dataplane",
        HOME_ACCOUNT,
        "ingress-task",
        claim("default", "gateway"),
        {},
        "type_mismatch",
        "type ingress",
    ),
    (
        "type-mismatch-ingress-as-egress",
        HOME_ACCOUNT,
        "ingress-task",
        {"type": "egress", "name": "eg-01"},
        {},
        "type_mismatch",
        "type ingress",
    ),
    (
        "workload-mismatch",
        HOME_ACCOUNT,
        "worker-task",
        claim("default", "worker", workload="billing"),
        {},
        "workload_mismatch",
        "'worker'",
    ),
    (
        "invalid-role-tags",
        HOME_ACCOUNT,
        "bad-type-task",
        claim("default"),
        {},
        "invalid_role_tags",
        "kuma-type-invalid",
    ),
    (
        "role-without-mesh",
        HOME_ACCOUNT,
        "no-mesh-task",
        claim("default"),
        {},
        "invalid_role_tags",
        "kuma-mesh-missing",
    ),
    (
        "untagged-role",
        HOME_ACCOUNT,
        "untagged-task",
        claim("default"),
        {},
        "invalid_role_tags",
        "kuma.io/type",
    ),
    (
        "account-not-authorized",
        OUTSIDER_ACCOUNT,
        "intruder-task",
        claim("default", "backend"),
        {},
        "account_not_authorized",
        "333333333333",
    ),
    (
        "zone-mismatch",
        HOME_ACCOUNT,
        "ingress-task",
        {"type": "ingress", "name": "in-01"},
        {"zone": "zone-2"},
        "zone_mismatch",
        "'zone-2'",
    ),
]


@pytest.mark.parametrize(
    ("account", "role", "dataplane", "fields", "reason", "message"),
    [pytest.param(*row[1:], id=row[0]) for row in REFUSALS],
)
def test_a_role_gets_no_token_beyond_its_tags(
    account: str,
    role: str,
    dataplane: dict[str, Any],
    fields: dict[str, Any],
    reason: str,
    message: str,
    exchange: Callable[..., IssuerAnswer],
) -> None:
    answer = exchange(account, role, dataplane, **fields)
    assert answer.status == 403, answer.body
    assert answer.body["error"] == "denied"
    assert answer.reason == reason, answer.body
    assert message in answer.body["message"], answer.body
    assert "token" not in answer.body


def test_an_iam_user_identity_is_refused(
    issuer: TokenIssuer, task_session: Session, sign_with: TokenFactory, demo_world: DemoWorld
) -> None:
    # Given an identity signed with an IAM user's long-term key, sent by a task role
    user = demo_world.ci_user
    token = sign_with(
        {"AWS_ACCESS_KEY_ID": user.access_key_id, "AWS_SECRET_ACCESS_KEY": user.secret_access_key}
    )
    _, caller = task_session(HOME_ACCOUNT, "backend-task")
    answer = issuer.exchange(token, BACKEND_CLAIM, caller=caller)
    assert (answer.status, answer.reason) == (403, "unsupported_principal")


# --- the caller binding -------------------------------------------------------------------------------------


def test_a_leaked_identity_token_is_worth_nothing_to_another_role(
    issuer: TokenIssuer, task_session: Session, sign_with: TokenFactory, aws_proxy: FakeAws
) -> None:
    # Given the backend task's identity token, in the hands of the frontend task
    backend, _ = task_session(HOME_ACCOUNT, "backend-task")
    token = sign_with(backend)
    _, frontend = task_session(HOME_ACCOUNT, "frontend-task", "backend-task")
    # When the frontend task exchanges it (its session even named like the backend role)
    answer = issuer.exchange(token, BACKEND_CLAIM, caller=frontend)
    # Then it is refused as a caller mismatch, naming both roles
    assert (answer.status, answer.reason) == (403, "caller_mismatch"), answer.body
    assert "signed by role frontend-task" in answer.body["message"]
    assert "identity token's role backend-task" in answer.body["message"]


def test_a_thiefs_refused_exchange_does_not_spend_the_owners_token(
    issuer: TokenIssuer,
    task_session: Session,
    sign_with: TokenFactory,
    reconfigure_issuer: Callable[..., None],
    replay_table: str,
) -> None:
    # Given replay protection on, and the backend task's identity token stolen by the frontend task
    reconfigure_issuer(KUMA_IAM_REPLAY_TABLE=replay_table)
    backend, own = task_session(HOME_ACCOUNT, "backend-task")
    token = sign_with(backend)
    _, frontend = task_session(HOME_ACCOUNT, "frontend-task")
    # When the thief exchanges it first
    stolen = issuer.exchange(token, BACKEND_CLAIM, caller=frontend)
    assert (stolen.status, stolen.reason) == (403, "caller_mismatch"), stolen.body
    # Then the owner's own exchange of that token still gets a token (the binding is checked before the
    # token is spent), and a second use is the replay it is
    assert_issued(issuer.exchange(token, BACKEND_CLAIM, caller=own))
    again = issuer.exchange(token, BACKEND_CLAIM, caller=own)
    assert (again.status, again.reason) == (403, "replayed"), again.body


def test_the_same_role_in_another_session_may_exchange(
    issuer: TokenIssuer, task_session: Session, sign_with: TokenFactory
) -> None:
    identity, _ = task_session(HOME_ACCOUNT, "backend-task", "task-a")
    _, caller = task_session(HOME_ACCOUNT, "backend-task", "task-b")
    assert_issued(issuer.exchange(sign_with(identity), BACKEND_CLAIM, caller=caller))


@pytest.mark.parametrize("who", ["control-plane-user", "no-iam-authorizer"])
def test_a_caller_that_is_no_task_role_is_refused_before_any_aws_call(
    who: str,
    issuer: TokenIssuer,
    task_session: Session,
    sign_with: TokenFactory,
    demo_world: DemoWorld,
    reconfigure_issuer: Callable[..., None],
    aws_proxy: FakeAws,
) -> None:
    # Given every AWS call of the issuer passing through a counting proxy
    reconfigure_issuer(
        **dict.fromkeys(
            (
                "AWS_ENDPOINT_URL_STS",
                "AWS_ENDPOINT_URL_IAM",
                "AWS_ENDPOINT_URL_KMS",
                "AWS_ENDPOINT_URL_DYNAMODB",
            ),
            aws_proxy.url,
        )
    )
    credentials, _ = task_session(HOME_ACCOUNT, "backend-task")
    token = sign_with(credentials)
    aws_proxy.reset_requests()
    caller = control_plane_caller(demo_world) if who == "control-plane-user" else None
    # When the backend's genuine token comes from the control plane's user, or with no IAM caller at all
    answer = issuer.exchange(token, BACKEND_CLAIM, caller=caller)
    # Then it is refused, and AWS never heard of it
    assert (answer.status, answer.reason) == (403, "caller_mismatch"), answer.body
    assert aws_proxy.requests == []


# --- lifetime -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("valid_for", "seconds"), [("90m", 5400), ("1h30m", 5400), ("24h", 86400), ("1m", 60)]
)
def test_valid_for_sets_the_lifetime(
    valid_for: str,
    seconds: int,
    exchange: Callable[..., IssuerAnswer],
    published: Callable[[], dict[str, Any]],
) -> None:
    before = time.time()
    body = assert_issued(exchange(HOME_ACCOUNT, "backend-task", BACKEND_CLAIM, validFor=valid_for))
    claims = parse_and_verify(body["token"], dataplane_keys_for(published(), "default"), now=time.time())
    assert before + seconds - 5 <= claims["exp"] <= time.time() + seconds


@pytest.mark.parametrize(
    ("valid_for", "max_valid_for", "message"),
    [
        ("25h", None, "validFor 25h is longer than this issuer's maximum 24h"),
        ("3h", "2h", "validFor 3h is longer than this issuer's maximum 2h"),
        ("0s", None, "validFor must be at least 1m"),
        ("-1h", None, "a duration has no sign"),
        ("forever", None, "not a duration"),
    ],
)
def test_a_lifetime_out_of_bounds_is_a_400(
    valid_for: str,
    max_valid_for: str | None,
    message: str,
    exchange: Callable[..., IssuerAnswer],
    reconfigure_issuer: Callable[..., None],
) -> None:
    if max_valid_for is not None:
        reconfigure_issuer(KUMA_IAM_TOKEN_MAX_VALID_FOR=max_valid_for)
    answer = exchange(HOME_ACCOUNT, "backend-task", BACKEND_CLAIM, validFor=valid_for)
    assert (answer.status, answer.reason) == (400, "invalid_request"), answer.body
    assert message in answer.body["message"]


# --- revocation ---------------------------------------------------------------------------------------------


def test_token_ids_are_fresh_random_uuids(exchange: Callable[..., IssuerAnswer]) -> None:
    # Given a role that may have tokens
    # When it asks for several
    jtis = [assert_issued(exchange(HOME_ACCOUNT, "backend-task", BACKEND_CLAIM))["jti"] for _ in range(12)]
    # Then every id is a version-4 UUID (122 random bits) and none repeats: a revoked id is never drawn
    # again for practical purposes, which is why minting reads no revocations table
    assert len(set(jtis)) == len(jtis)
    assert all(uuid.UUID(jti).version == 4 and str(uuid.UUID(jti)) == jti for jti in jtis)


# --- keys: rotation, loading, publication -------------------------------------------------------------------


def test_a_rotation_keeps_tokens_signed_before_it_valid(
    exchange: Callable[..., IssuerAnswer],
    published: Callable[[], dict[str, Any]],
    reconfigure_issuer: Callable[..., None],
    token_keys: TokenKeys,
) -> None:
    # Given a token signed by the operator's PEM key as kid 1
    reconfigure_issuer(KUMA_IAM_SIGNING_KEYS=f"1={token_keys.pem_secret_arn}")
    before = assert_issued(exchange(HOME_ACCOUNT, "backend-task", BACKEND_CLAIM))
    assert before["kid"] == "1"
    # When the KMS key is added as kid 2 (a new container picks it up)
    reconfigure_issuer(
        KUMA_IAM_SIGNING_KEYS=f"1={token_keys.pem_secret_arn},2={token_keys.dataplane_key_alias}"
    )
    after = assert_issued(exchange(HOME_ACCOUNT, "backend-task", BACKEND_CLAIM))
    # Then kid 2 signs, /v1/keys publishes both, and a control plane configured from it admits both tokens
    assert after["kid"] == "2"
    keys = published()
    assert keys["signingKid"]["dataplane"] == "2"
    assert [key["kid"] for key in keys["jwks"]["keys"]] == ["1", "2"]
    configured = dataplane_keys_for(keys, "default")
    for token in (before["token"], after["token"]):
        validate_dataplane_token(
            token, configured, now=time.time(), mesh="default", name="backend-01", tags=BACKEND_TAGS
        )
    # And that is why kid 1 stays published: without it, the older token no longer validates
    with pytest.raises(Rejected, match="no signing key with KID 1"):
        parse_and_verify(before["token"], {"2": configured["2"]}, now=time.time())


def test_keys_are_read_once_per_container(
    exchange: Callable[..., IssuerAnswer],
    published: Callable[[], dict[str, Any]],
    reconfigure_issuer: Callable[..., None],
    aws_proxy: FakeAws,
) -> None:
    # Given KMS and Secrets Manager behind a counting proxy
    reconfigure_issuer(AWS_ENDPOINT_URL_KMS=aws_proxy.url, AWS_ENDPOINT_URL_SECRETS_MANAGER=aws_proxy.url)
    # When three tokens are issued and the keys are read twice
    for _ in range(3):
        assert_issued(exchange(HOME_ACCOUNT, "backend-task", BACKEND_CLAIM))
    published()
    published()
    # Then each key was read once (the two KMS keys and the PEM secret), and each token cost one kms:Sign
    counted = aws_proxy.count_by_action()
    assert counted["GetPublicKey"] == 2, counted
    assert counted["GetSecretValue"] == 1, counted
    assert counted["Sign"] == 3, counted


def test_an_alias_moved_to_another_key_stops_signing_until_reloaded(
    exchange: Callable[..., IssuerAnswer],
    admin_client: ClientFactory,
    token_keys: TokenKeys,
    reconfigure_issuer: Callable[..., None],
    published: Callable[[], dict[str, Any]],
) -> None:
    # Given an issuer that has published the key behind its alias
    alias = "alias/kuma-iam-moving-key"
    kms = admin_client(HOME_ACCOUNT, "kms")
    first = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    second = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=alias, TargetKeyId=first)
    try:
        reconfigure_issuer(KUMA_IAM_SIGNING_KEYS=f"1={alias}")
        assert_issued(exchange(HOME_ACCOUNT, "backend-task", BACKEND_CLAIM))
        # When the alias is moved to another key
        kms.update_alias(AliasName=alias, TargetKeyId=second)
        # Then no token signed by a key nobody was given is handed out
        answer = exchange(HOME_ACCOUNT, "backend-task", BACKEND_CLAIM)
        assert (answer.status, answer.reason) == (503, "upstream_unavailable"), answer.body
        assert "now signs with another KMS key" in answer.body["message"]
        # And a new container publishes and signs with the new key
        reconfigure_issuer(KUMA_IAM_SIGNING_KEYS=f"1={alias}")
        body = assert_issued(exchange(HOME_ACCOUNT, "backend-task", BACKEND_CLAIM))
        parse_and_verify(body["token"], dataplane_keys_for(published(), "default"), now=time.time())
    finally:
        kms.delete_alias(AliasName=alias)


def test_keys_are_published_as_kuma_cp_settings_and_jwks(
    issuer: TokenIssuer, demo_world: DemoWorld, token_keys: TokenKeys
) -> None:
    answer = issuer.keys(control_plane_caller(demo_world))
    assert answer.status == 200
    assert answer.headers["cache-control"] == "max-age=300"
    body = answer.body
    dataplane = body["dpServer"]["authn"]["dpProxy"]["dpToken"]["validator"]["publicKeys"]
    assert [(entry["kid"], entry["mesh"]) for entry in dataplane] == [
        ("1", "default"),
        ("2", "default"),
        ("1", "payments"),
        ("2", "payments"),
    ]
    zone = body["dpServer"]["authn"]["zoneProxy"]["zoneToken"]["validator"]["publicKeys"]
    assert [set(entry) for entry in zone] == [{"kid", "key"}]
    for entry in [*dataplane, *zone]:
        assert entry["key"].startswith("-----BEGIN RSA PUBLIC KEY-----\n"), "PKCS#1, not KMS's PKIX"
    assert body["signingKid"] == {"dataplane": "2", "zone": "1"}
    assert (body["meshes"], body["zone"]) == (list(token_keys.meshes), token_keys.zone)
    assert [key["kid"] for key in body["jwks"]["keys"]] == ["1", "2"]
    assert [key["kid"] for key in body["zoneJwks"]["keys"]] == ["1"]


def test_a_token_issued_now_is_accepted_for_a_minute_after_a_slow_clock(
    exchange: Callable[..., IssuerAnswer], published: Callable[[], dict[str, Any]]
) -> None:
    """A control plane whose clock runs two minutes behind still accepts the token at once (nbf, iat)."""
    body = assert_issued(exchange(HOME_ACCOUNT, "backend-task", BACKEND_CLAIM))
    behind = time.time() - timedelta(minutes=2).total_seconds()
    parse_and_verify(body["token"], dataplane_keys_for(published(), "default"), now=behind)


def test_claims_too_large_to_sign_are_a_400(exchange: Callable[..., IssuerAnswer]) -> None:
    # Given a role without a service tag asking for 64 long service names (KMS signs at most 4096 bytes)
    services = [f"svc-{index:02d}-" + "x" * 200 for index in range(64)]
    answer = exchange(HOME_ACCOUNT, "frontend-task", claim("default", *services))
    # Then it is refused precisely, not a 500 and not a token
    assert (answer.status, answer.reason) == (400, "invalid_request"), answer.body
    assert "at most 4096 can be signed" in answer.body["message"]


@pytest.mark.parametrize(
    "event",
    [{}, {"version": "2.0", "routeKey": "POST /v1/tokens"}, []],
    ids=["empty", "no-context", "a-list"],
)
def test_a_malformed_event_is_a_400_not_a_500(
    event: object, issuer: TokenIssuer, demo_world: DemoWorld
) -> None:
    context = LocalLambdaContext(
        function_name="TokenIssuerFunction", aws_request_id="r-1", region="us-east-1", account_id=HOME_ACCOUNT
    )
    result = issuer.module.lambda_handler(event, context)
    assert result["statusCode"] == 400
    assert '"invalid_request"' in result["body"]
