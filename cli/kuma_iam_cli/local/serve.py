"""`kuma-iam serve`: the real handlers behind a local IAM-checking gateway (the verifier and the token issuer;
tag compliance behind a local EventBridge route), on the embedded AWS or (the verifier alone) real AWS."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path

import boto3

from kuma_iam_cli.commands.dataplane_token import ISSUER_CALLER_CREDENTIALS
from kuma_iam_cli.errors import CommandError
from kuma_iam_cli.local.compliance_demo import COMPLIANCE_DEMO_ROLES, TAG_ADMINS
from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.eventbridge_route import EVENTBRIDGE_ROUTE, deliver_to
from kuma_iam_cli.local.events import VERIFIER_CASES, VERIFY_ROUTE, VerifierCase
from kuma_iam_cli.local.expected import describe, expected_answers
from kuma_iam_cli.local.function_output import FunctionOutput
from kuma_iam_cli.local.gateway import GatewayCaller, GatewayExchange, Handler, LocalGateway, load_handler
from kuma_iam_cli.local.listeners import WantedPort, take_ports
from kuma_iam_cli.local.request_log import request_line
from kuma_iam_cli.local.seed import (
    DemoWorld,
    compliance_environment,
    control_plane_caller,
    seed_demo_world,
    task_caller,
    task_credentials,
    verifier_environment,
)
from kuma_iam_cli.local.state import RunningStack, StackState
from kuma_iam_cli.local.token_events import KEYS_ROUTE, TOKEN_ISSUER_CASES, TOKENS_ROUTE, TokenIssuerCase
from kuma_iam_cli.local.token_keys import TokenKeys, seed_token_keys, token_issuer_environment

GATEWAY_HOST = "127.0.0.1"  # the gateway is for this machine's shells; --host opens the embedded AWS only
ANY_ADDRESS = "0.0.0.0"  # noqa: S104 - what `--host` takes to let containers in
# The token the printed `dataplane-token` command asks for: the sample event `allowed`'s, answered alike.
(ISSUER_DEMO_CASE,) = (case for case in TOKEN_ISSUER_CASES if case.name == "allowed")


def serve(args: argparse.Namespace) -> int:
    # From the start, so a SIGTERM at any moment unwinds like Ctrl-C (the stack file goes, ports close).
    signal.signal(signal.SIGTERM, _interrupt)
    functions = Path(args.functions).absolute()
    handler_path = functions / "verifier" / "app.py"
    issuer_path = functions / "token_issuer" / "app.py"
    for path in (handler_path, issuer_path):
        if not path.is_file():
            raise CommandError(f"{path} not found: run serve from the repository root, or give --functions")
    if args.aws:
        return _serve_on_aws(args, handler_path)
    # Both ports before anything starts: a busy one is an error now, not a hang after seeding.
    aws_listener, gateway_listener = take_ports(
        [
            WantedPort(args.host, args.moto_port, "--moto-port", "the embedded AWS"),
            WantedPort(GATEWAY_HOST, args.port, "--port", "the verifier's gateway"),
        ]
    )
    with EmbeddedAws(host=args.host, listener=aws_listener) as aws:
        state = StackState.for_port(Path(args.state_dir), aws.port)
        state.prepare()
        world = seed_demo_world(aws)
        token_keys = seed_token_keys(aws, world)
        aws.enable_signature_checks()
        state.write_private(state.world_file, world.to_json())
        state.write_private(state.tokens_file, token_keys.to_json())
        os.environ.update(verifier_environment(world, server_id=args.server_id))
        handler = load_handler(handler_path)
        issuer = _token_issuer_handler(issuer_path, world, token_keys, args.server_id)
        compliance = _compliance_handler(Path(args.functions), world)
        # The task whose printed command gets a token calls the issuer itself, with its own session.
        task_env, task = task_caller(world, *ISSUER_DEMO_CASE.signer)
        with (
            FunctionOutput(state.lambda_log) as function_output,
            LocalGateway(
                {
                    VERIFY_ROUTE: function_output.invoking(handler),
                    TOKENS_ROUTE: function_output.invoking(issuer),
                    KEYS_ROUTE: function_output.invoking(issuer),
                    EVENTBRIDGE_ROUTE: function_output.invoking(compliance),
                },
                [control_plane_caller(world), task],
                api_account_id=world.home_account,
                host=GATEWAY_HOST,
                listener=gateway_listener,
                # EventBridge needs no signature: the local stand-in for it listens on this machine only.
                public_routes={EVENTBRIDGE_ROUTE},
                on_exchange=_print_request,
            ) as gw,
        ):
            verify_url = f"{gw.endpoint_url}/v1/verify"
            state.announce(
                RunningStack(
                    pid=os.getpid(),
                    verify_url=verify_url,
                    endpoint_url=world.endpoint_url,
                    state_dir=str(state.folder),
                )
            )
            instructions = [
                _demo_instructions(world, state, verify_url, args),
                _compliance_instructions(world, state, gw.endpoint_url, args),
                _token_instructions(world, token_keys, state, gw.endpoint_url, task_env, args),
                "\nCtrl-C stops the stack. One line per request below:",
            ]
            try:
                _serve_until_interrupted("\n".join(instructions))
            finally:
                state.withdraw()
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


def _compliance_instructions(
    world: DemoWorld, state: StackState, gateway_url: str, args: argparse.Namespace
) -> str:
    environment = compliance_environment(world)
    # The sweep from a laptop: the compliance principal's keys and the embedded AWS, but not the function's
    # outputs (SNS, Security Hub, idempotency) — the sweep prints its findings.
    shell = state.write_credentials(
        "compliance",
        {
            name: value
            for name, value in environment.items()
            if name.startswith("AWS_")
            or name in ("KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS", "KUMA_IAM_COMPLIANCE_ROLE_NAME")
        },
    )
    kuma = _kuma_iam_command()
    events_dir = Path(args.functions).absolute().parent / "events"
    expected = expected_answers(events_dir)
    event = events_dir / "tag_compliance" / "tag-role-by-other.json"
    answer = expected.get("tag_compliance/tag-role-by-other")
    broken = ", ".join(
        f"{spec.name} ({', '.join(spec.breaks)})" for spec in COMPLIANCE_DEMO_ROLES if spec.breaks
    )
    return "\n".join(
        [
            "",
            "Tag compliance (report mode; tag admins: " + ", ".join(TAG_ADMINS) + ").",
            f"Demo roles that break a rule: {broken}; orders-task breaks none.",
            "The verifier's demo task roles also trust the stand-in ECS agent (an IAM user) and name no",
            "source account: the sweep reports trust-not-ecs-tasks and trust-no-source-condition for them.",
            "\n# sweep every role of both accounts -> a findings table, exit 1 (--json for the summary)",
            f"env $(cat {_quoted(shell)}) {kuma} sweep",
            "\n# an IAM event as EventBridge delivers it: a developer (not a tag admin) tagged orders-task",
            f"curl -s --data {shlex.quote(f'@{event}')} {gateway_url}/local/eventbridge",
            f"# -> {describe(answer) if answer is not None else '?'}. The same event again gets the same",
            "#    answer and no second notification (each event id is handled once). Other events, and the",
            f"#    answer each must get (expected.json): {event.parent}",
        ]
    )


def _serve_on_aws(args: argparse.Namespace, handler_path: Path) -> int:
    """Serve against the account of your own credentials; only those credentials may call the gateway."""
    (gateway_listener,) = take_ports(
        [WantedPort(GATEWAY_HOST, args.port, "--port", "the verifier's gateway")]
    )
    session = boto3.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise CommandError("serve --aws needs AWS credentials")
    identity = session.client("sts").get_caller_identity()
    os.environ.setdefault("KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS", identity["Account"])
    os.environ.setdefault("KUMA_IAM_SERVER_ID", args.server_id)
    os.environ.setdefault("AWS_REGION", session.region_name or "us-east-1")
    frozen = credentials.get_frozen_credentials()
    if frozen.access_key is None or frozen.secret_key is None:
        raise CommandError("serve --aws needs complete AWS credentials")
    caller = GatewayCaller(
        access_key_id=frozen.access_key,
        secret_access_key=frozen.secret_key,
        session_token=frozen.token,
        account_id=identity["Account"],
        user_arn=identity["Arn"],
        user_id=identity["UserId"],
    )
    handler = load_handler(handler_path)
    state = StackState(Path(args.state_dir).absolute() / "aws")
    state.prepare()
    with (
        FunctionOutput(state.lambda_log) as function_output,
        LocalGateway(
            {VERIFY_ROUTE: function_output.invoking(handler)},
            [caller],
            api_account_id=identity["Account"],
            host=GATEWAY_HOST,
            listener=gateway_listener,
            on_exchange=_print_request,
        ) as gw,
    ):
        kuma = _kuma_iam_command()
        _serve_until_interrupted(
            f"kuma-iam verifier on AWS account {identity['Account']}, at {gw.endpoint_url}/v1/verify\n"
            f"authorized accounts: {os.environ['KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS']}; "
            f"server id: {os.environ['KUMA_IAM_SERVER_ID']}\n"
            "From a task (or any shell with a tagged role's credentials):\n"
            f"  {kuma} verify --url {gw.endpoint_url}/v1/verify --mesh default "
            f'--token "$({kuma} token --server-id {os.environ["KUMA_IAM_SERVER_ID"]})"\n'
            f"The function's JSON log (as Lambda writes it to CloudWatch): {state.lambda_log}\n"
            "Ctrl-C stops it; one line per request below."
        )
    return 0


def _demo_instructions(world: DemoWorld, state: StackState, url: str, args: argparse.Namespace) -> str:
    control_plane = state.write_credentials(
        "control-plane",
        {
            "AWS_ACCESS_KEY_ID": world.control_plane.access_key_id,
            "AWS_SECRET_ACCESS_KEY": world.control_plane.secret_access_key,
            "AWS_REGION": world.region,
        },
    )
    kuma = _kuma_iam_command()
    events = (
        f"{kuma} events --world {_quoted(state.world_file)} "
        f"--out {_quoted(Path(args.functions).absolute().parent / 'events')}"
    )
    lines = [
        f"kuma-iam verifier on the embedded AWS ({world.endpoint_url}, SigV4 checked), at {url}",
        f"authorized accounts {world.home_account}, {world.partner_account}; "
        f"not authorized {world.outsider_account}; "
        f"server id {args.server_id!r}.",
        f"State (world, credentials): {state.folder}",
        f"The function's JSON log (as Lambda writes it to CloudWatch): {state.lambda_log}",
        f"Events for `sam local invoke`: {events}"
        + ("" if args.host == ANY_ADDRESS else "  (containers reach this stack only with --host 0.0.0.0)"),
        "Try it from any directory (each line signs a fresh token with a task role's credentials and asks "
        "the verifier):",
    ]
    expected = expected_answers(Path(args.functions).absolute().parent / "events")
    for case in VERIFIER_CASES:
        answer = expected.get(f"verifier/{case.name}")
        lines.append(f"\n# {case.name} -> {describe(answer) if answer is not None else '?'}")
        lines.append(
            f"env $(cat {_quoted(control_plane)}) {kuma} verify --url {url} {_claim_flags(case)} "
            f"--token {_token_expression(world, state, case, kuma, args.server_id)}"
        )
    return "\n".join(lines)


def _token_instructions(
    world: DemoWorld,
    keys: TokenKeys,
    state: StackState,
    base_url: str,
    task_env: dict[str, str],
    args: argparse.Namespace,
) -> str:
    """Commands that get a token as the backend task (the sample event `allowed` asks the same), show the
    keys as kuma-cp takes them, and validate the token with them; each with the answer it must get."""
    kuma = _kuma_iam_command()
    task = state.write_credentials(
        ISSUER_CALLER_CREDENTIALS.removesuffix(".env"), {**task_env, "AWS_REGION": world.region}
    )
    control_plane = state.credentials_dir / "control-plane.env"
    token_file = state.folder / "backend.token"
    expected = expected_answers(Path(args.functions).absolute().parent / "events")
    answer = expected.get(f"token_issuer/{ISSUER_DEMO_CASE.name}")
    issued = describe(answer) if answer is not None else "?"
    kid = answer.get("body", {}).get("kid", "?") if isinstance(answer, dict) else "?"
    return "\n".join(
        [
            f"\nToken issuer at {base_url}/v1/tokens and {base_url}/v1/keys: dataplane tokens for meshes "
            f"{', '.join(keys.meshes)} (kid 1: a Kuma PEM key in Secrets Manager, published; kid 2: a KMS "
            f"key, signs), zone tokens for {keys.zone} (a KMS key of their own). Its keys and table: "
            f"{state.tokens_file}",
            f"\n# token: the backend task exchanges its identity for a dataplane token, a file only it reads "
            f"-> {issued}, exit 0",
            f"env $(cat {_quoted(task)}) {kuma} dataplane-token --url {base_url}/v1/tokens "
            f"--server-id {args.server_id} {_token_flags(ISSUER_DEMO_CASE)} --output {_quoted(token_file)}",
            "\n# keys: the public keys as kuma-cp settings (dpServer.authn...validator.publicKeys) -> keys",
            f"env $(cat {_quoted(control_plane)}) {kuma} tokens keys --url {base_url}/v1/keys",
            f"\n# validate: the token with the published keys, as a control plane would -> valid, kid {kid}",
            f"env $(cat {_quoted(control_plane)}) {kuma} tokens validate --token-file {_quoted(token_file)} "
            f"--keys-url {base_url}/v1/keys",
        ]
    )


def _token_flags(case: TokenIssuerCase) -> str:
    spec = case.dataplane
    flags = [f"--mesh {spec['mesh']}", f"--name {spec['name']}"]
    flags += [f"--service {service}" for service in spec.get("tags", {}).get("kuma.io/service", [])]
    if "validFor" in case.fields:
        flags.append(f"--valid-for {case.fields['validFor']}")
    return " ".join(flags)


def _token_expression(
    world: DemoWorld, state: StackState, case: VerifierCase, kuma: str, server_id: str
) -> str:
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
    credentials = state.write_credentials(name, {**environment, "AWS_REGION": world.region})
    token_format = " --format vault" if case.encoding == "vault" else ""
    return (
        f'"$(env $(cat {_quoted(credentials)}) {kuma} token --server-id {case.server_id or server_id}'
        f'{token_format})"'
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


def _kuma_iam_command() -> str:
    """The command as installed beside this Python, by absolute path: printed lines work from anywhere."""
    return _quoted(Path(sys.executable).parent / "kuma-iam")


def _quoted(path: Path) -> str:
    return shlex.quote(str(path))


def _print_request(exchange: GatewayExchange) -> None:
    print(request_line(exchange, datetime.now().astimezone()), flush=True)


def _serve_until_interrupted(instructions: str) -> None:
    """Print the instructions, then serve until Ctrl-C or SIGTERM (see serve()), either a clean stop."""
    try:
        print(instructions, flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        print("\nstopping", flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
