"""`kuma-iam serve`: the real verifier handler behind a local IAM-checking gateway, embedded or real AWS."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import threading
from pathlib import Path

import boto3

from kuma_iam_cli.local.compliance_demo import COMPLIANCE_DEMO_ROLES, TAG_ADMINS
from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.eventbridge_route import EVENTBRIDGE_ROUTE, deliver_to
from kuma_iam_cli.local.events import VERIFIER_CASES, VERIFY_ROUTE, VerifierCase
from kuma_iam_cli.local.gateway import GatewayCaller, Handler, LocalGateway, load_handler
from kuma_iam_cli.local.seed import (
    DemoWorld,
    compliance_environment,
    control_plane_caller,
    seed_demo_world,
    task_caller,
    task_credentials,
    verifier_environment,
)
from kuma_iam_cli.local.token_events import KEYS_ROUTE, TOKENS_ROUTE
from kuma_iam_cli.local.token_keys import TokenKeys, seed_token_keys, token_issuer_environment

STATE_DIR = Path(".local")


def serve(args: argparse.Namespace) -> int:
    handler_path = Path(args.functions) / "verifier" / "app.py"
    issuer_path = Path(args.functions) / "token_issuer" / "app.py"
    if not handler_path.is_file() or not issuer_path.is_file():
        print(f"kuma-iam: {handler_path} not found: run serve from the repository root", file=sys.stderr)
        return 2
    if args.aws:
        return _serve_on_aws(args, handler_path)
    with EmbeddedAws(host=args.host, port=args.moto_port) as aws:
        world = seed_demo_world(aws)
        token_keys = seed_token_keys(aws, world)
        aws.enable_signature_checks()
        os.environ.update(verifier_environment(world, server_id=args.server_id))
        handler = load_handler(handler_path)
        issuer = _token_issuer_handler(issuer_path, world, token_keys, args.server_id)
        compliance = _compliance_handler(Path(args.functions), world)
        # The task whose printed command gets a token calls the issuer itself, with its own session.
        task_env, task = task_caller(world, world.home_account, "backend-task")
        with LocalGateway(
            {VERIFY_ROUTE: handler, TOKENS_ROUTE: issuer, KEYS_ROUTE: issuer, EVENTBRIDGE_ROUTE: compliance},
            [control_plane_caller(world), task],
            api_account_id=world.home_account,
            port=args.port,
            # EventBridge needs no signature: the local stand-in for it listens on this machine only.
            public_routes={EVENTBRIDGE_ROUTE},
        ) as gw:
            print(_demo_instructions(world, f"{gw.endpoint_url}/v1/verify", args.server_id), flush=True)
            print(_compliance_instructions(world, gw.endpoint_url, Path(args.functions)), flush=True)
            print(
                _token_instructions(world, token_keys, gw.endpoint_url, args.server_id, task_env), flush=True
            )
            print("\nCtrl-C stops the stack.", flush=True)
            _wait_for_interrupt()
    return 0


def _token_issuer_handler(path: Path, world: DemoWorld, keys: TokenKeys, server_id: str) -> Handler:
    """The token issuer, built (settings read, clients made, credentials resolved) with its own principal's
    environment, as `_compliance_handler` does; the process's environment then goes back to the verifier's."""
    handler = load_handler(path)
    verifier_environment_now = dict(os.environ)
    os.environ.update(token_issuer_environment(world, keys, server_id=server_id))
    try:
        sys.modules["token_issuer"].issuer()
    finally:
        os.environ.clear()
        os.environ.update(verifier_environment_now)
    return handler


def _compliance_handler(functions: Path, world: DemoWorld) -> Handler:
    """The tag-compliance handler behind the local EventBridge route, built with the compliance principal's
    keys: both handlers share this process's environment, so the function is built (settings read, clients
    made, credentials resolved) once with its own, and the environment goes back to the verifier's."""
    handler = load_handler(functions / "tag_compliance" / "app.py")
    verifier_environment_now = dict(os.environ)
    os.environ.update(compliance_environment(world))
    try:
        sys.modules["tag_compliance"].compliance()
    finally:
        os.environ.clear()
        os.environ.update(verifier_environment_now)
    return deliver_to(handler)


def _compliance_instructions(world: DemoWorld, gateway_url: str, functions: Path) -> str:
    environment = compliance_environment(world)
    shell = _env_file(
        "compliance",
        {
            name: value
            for name, value in environment.items()
            if name.startswith("AWS_")
            or name in ("KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS", "KUMA_IAM_COMPLIANCE_ROLE_NAME")
        },
    ).resolve()
    kuma = Path(_kuma_iam_command()).resolve()
    events = (functions.resolve().parent / "events" / "tag_compliance").resolve()
    broken = ", ".join(
        f"{spec.name} ({', '.join(spec.breaks)})" for spec in COMPLIANCE_DEMO_ROLES if spec.breaks
    )
    return "\n".join(
        [
            "",
            "Tag compliance (report mode; tag admins: " + ", ".join(TAG_ADMINS) + ").",
            f"Demo roles that break a rule: {broken}; orders-task breaks none.",
            "The verifier's demo task roles also trust the stand-in ECS agent (an IAM user): the sweep",
            "reports trust-not-ecs-tasks for them.",
            "\n# sweep every role of both accounts -> a findings table, exit 1 (--json for the summary)",
            f"env $(cat {shell}) {kuma} sweep",
            "\n# an IAM event as EventBridge delivers it: a developer (not a tag admin) tagged orders-task",
            f"curl -s --data @{events / 'tag-role-by-other.json'} {gateway_url}/local/eventbridge",
            "# -> kuma-tag-change-unauthorized on orders-task. The same event again gets the same answer and",
            "#    no second notification (each event id is handled once). Other events: " + str(events),
        ]
    )


def _serve_on_aws(args: argparse.Namespace, handler_path: Path) -> int:
    """Serve against the account of your own credentials; only those credentials may call the gateway."""
    session = boto3.Session()
    credentials = session.get_credentials()
    if credentials is None:
        print("kuma-iam: serve --aws needs AWS credentials", file=sys.stderr)
        return 2
    identity = session.client("sts").get_caller_identity()
    os.environ.setdefault("KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS", identity["Account"])
    os.environ.setdefault("KUMA_IAM_SERVER_ID", args.server_id)
    os.environ.setdefault("AWS_REGION", session.region_name or "us-east-1")
    frozen = credentials.get_frozen_credentials()
    if frozen.access_key is None or frozen.secret_key is None:
        print("kuma-iam: serve --aws needs complete AWS credentials", file=sys.stderr)
        return 2
    caller = GatewayCaller(
        access_key_id=frozen.access_key,
        secret_access_key=frozen.secret_key,
        session_token=frozen.token,
        account_id=identity["Account"],
        user_arn=identity["Arn"],
        user_id=identity["UserId"],
    )
    handler = load_handler(handler_path)
    with LocalGateway(
        {VERIFY_ROUTE: handler}, [caller], api_account_id=identity["Account"], port=args.port
    ) as gw:
        kuma = _kuma_iam_command()
        print(
            f"kuma-iam verifier on AWS account {identity['Account']}, at {gw.endpoint_url}/v1/verify\n"
            f"authorized accounts: {os.environ['KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS']}; "
            f"server id: {os.environ['KUMA_IAM_SERVER_ID']}\n"
            "From a task (or any shell with a tagged role's credentials):\n"
            f"  {kuma} verify --url {gw.endpoint_url}/v1/verify --mesh default "
            f'--token "$({kuma} token --server-id {os.environ["KUMA_IAM_SERVER_ID"]})"\n'
            "Ctrl-C stops it.",
            flush=True,
        )
        _wait_for_interrupt()
    return 0


def _demo_instructions(world: DemoWorld, url: str, server_id: str) -> str:
    STATE_DIR.mkdir(exist_ok=True)
    (STATE_DIR / "world.json").write_text(world.to_json())
    control_plane = _env_file(
        "control-plane",
        {
            "AWS_ACCESS_KEY_ID": world.control_plane.access_key_id,
            "AWS_SECRET_ACCESS_KEY": world.control_plane.secret_access_key,
            "AWS_REGION": world.region,
        },
    )
    kuma = _kuma_iam_command()
    lines = [
        f"kuma-iam verifier on the embedded AWS ({world.endpoint_url}, SigV4 checked), at {url}",
        f"authorized accounts {world.home_account}, {world.partner_account}; "
        f"not authorized {world.outsider_account}; "
        f"server id {server_id!r}.",
        f"Events for `sam local invoke`: {kuma} events --world {STATE_DIR / 'world.json'}",
        "Try it (each line signs a fresh token with a task role's credentials and asks the verifier):",
    ]
    for case in VERIFIER_CASES:
        expected = (
            "allow" if case.expected_allowed else case.expected_reason or f"HTTP {case.expected_status}"
        )
        lines.append(f"\n# {case.name} -> {expected}")
        lines.append(
            f"env $(cat {control_plane}) {kuma} verify --url {url} {_claim_flags(case)} "
            f"--token {_token_expression(world, case, kuma, server_id)}"
        )
    return "\n".join(lines)


def _token_instructions(
    world: DemoWorld, keys: TokenKeys, base_url: str, server_id: str, task_env: dict[str, str]
) -> str:
    """Commands that get a token as the backend task, show the keys as kuma-cp takes them, and validate."""
    (STATE_DIR / "tokens.json").write_text(keys.to_json())
    kuma = _kuma_iam_command()
    task = _env_file("home-backend-task-issuer", {**task_env, "AWS_REGION": world.region})
    control_plane = STATE_DIR / "credentials" / "control-plane.env"
    token_file = STATE_DIR / "backend.token"
    return "\n".join(
        [
            f"\nToken issuer at {base_url}/v1/tokens and {base_url}/v1/keys: dataplane tokens for meshes "
            f"{', '.join(keys.meshes)} (kid 1: a Kuma PEM key in Secrets Manager, published; kid 2: a KMS "
            f"key, signs), zone tokens for {keys.zone} (a KMS key of their own).",
            "\n# token: the backend task exchanges its identity for a dataplane token (mode 0600)",
            f"env $(cat {task}) {kuma} dataplane-token --url {base_url}/v1/tokens --server-id {server_id} "
            f"--mesh default --name backend-01 --service backend --output {token_file}",
            "\n# keys: the public keys as kuma-cp settings (dpServer.authn...validator.publicKeys)",
            f"env $(cat {control_plane}) {kuma} tokens keys --url {base_url}/v1/keys",
            "\n# validate: the token with the published keys, as a control plane would",
            f"env $(cat {control_plane}) {kuma} tokens validate --token-file {token_file} "
            f"--keys-url {base_url}/v1/keys",
        ]
    )


def _token_expression(world: DemoWorld, case: VerifierCase, kuma: str, server_id: str) -> str:
    if case.fixed_token is not None:
        return shlex.quote(case.fixed_token)
    if case.signer == "ci-user":
        environment = {
            "AWS_ACCESS_KEY_ID": world.ci_user.access_key_id,
            "AWS_SECRET_ACCESS_KEY": world.ci_user.secret_access_key,
        }
        name = "ci-user"
    elif case.signer is not None:
        account, role = case.signer
        environment = task_credentials(world, account, role)
        name = f"{account}-{role}"
    else:
        raise ValueError(f"case {case.name} has no signer")
    if case.forge_signature:
        environment = {**environment, "AWS_SECRET_ACCESS_KEY": "forged-secret"}
        name += "-forged"
    credentials = _env_file(name, {**environment, "AWS_REGION": world.region})
    token_format = " --format vault" if case.encoding == "vault" else ""
    return (
        f'"$(env $(cat {credentials}) {kuma} token --server-id {case.server_id or server_id}{token_format})"'
    )


def _claim_flags(case: VerifierCase) -> str:
    spec = case.dataplane
    flags = [f"--type {spec['type']}", f"--name {spec['name']}"]
    if spec.get("mesh"):
        flags.append(f"--mesh {spec['mesh']}")
    flags += [f"--service {service}" for service in spec.get("tags", {}).get("kuma.io/service", [])]
    if spec.get("workload"):
        flags.append(f"--workload {spec['workload']}")
    return " ".join(flags)


def _env_file(name: str, environment: dict[str, str]) -> Path:
    """Credentials for the printed commands live in files (mode 600), not in the terminal's scrollback."""
    folder = STATE_DIR / "credentials"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.env"
    path.touch(mode=0o600)
    path.write_text("".join(f"{key}={value}\n" for key, value in environment.items()))
    return path


def _kuma_iam_command() -> str:
    return os.path.relpath(Path(sys.executable).parent / "kuma-iam")


def _wait_for_interrupt() -> None:
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("\nstopping")
