"""`kuma-iam verify`: the control plane's side, a SigV4-signed call to the verifier API."""

from __future__ import annotations

import argparse
import json
import re
import urllib.error
import urllib.request
from typing import Any

from kuma_iam_cli.arguments import http_url
from kuma_iam_cli.aws_credentials import DEFAULT_REGION, default_credentials
from kuma_iam_cli.errors import CommandError
from kuma_iam_cli.local.state import running_stacks
from kuma_iam_cli.signer import sign_api_call

TIMEOUT_SECONDS = 15
DESCRIPTION = """\
The control plane's side: send a sidecar's token and the Dataplane it claims to the verifier API
(POST /v1/verify) and print its answer as `HTTP <status> <json>`.

The call is signed with SigV4 for execute-api with the default AWS credentials. Those must be the control
plane's (a principal allowed to invoke the API), not the sidecar's: `kuma-iam serve` prints commands that
take them from its state folder."""
EPILOG = """\
exit status:
  0  allowed
  1  denied (the answer names the reason)
  2  error: the verifier refused the request (400, 403, 429, 503...), the URL is not a verifier, it could
     not be reached, or there are no credentials; one line on stderr says which"""
_XML_ERROR_CODE = re.compile(r"<Code>([A-Za-z0-9.]{1,64})</Code>")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verify = commands.add_parser(
        "verify",
        help="ask a verifier API (IAM-signed) to decide on a token",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    verify.add_argument(
        "--url", required=True, type=http_url, help="the verify endpoint, e.g. https://…/v1/verify"
    )
    verify.add_argument(
        "--token", required=True, help="compact token, or a Vault login object as JSON (`kuma-iam token`)"
    )
    verify.add_argument(
        "--type",
        choices=("dataplane", "ingress", "egress"),
        default="dataplane",
        help="the claimed proxy type",
    )
    verify.add_argument("--mesh", help="the claimed mesh (required for a dataplane)")
    verify.add_argument(
        "--service", action="append", default=[], help="a claimed kuma.io/service (repeatable)"
    )
    verify.add_argument("--workload", help="the claimed workload (the role's kuma.io/workload must match)")
    verify.add_argument("--name", default="cli-dataplane", help="the Dataplane's name")
    verify.add_argument(
        "--region",
        help=f"region of the API, for the SigV4 signature (default: the SDK's, else {DEFAULT_REGION})",
    )
    verify.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    dataplane: dict[str, object] = {"type": args.type, "mesh": args.mesh, "name": args.name}
    if args.service:
        dataplane["tags"] = {"kuma.io/service": args.service}
    if args.workload:
        dataplane["workload"] = args.workload
    body = json.dumps({"token": _token(args.token), "dataplane": dataplane}).encode()

    credentials, region = default_credentials(
        args.region,
        purpose="sign the call to the verifier (the control plane's credentials)",
        local_file="control-plane.env",
    )
    headers = sign_api_call(credentials, url=args.url, body=body, region=region)
    status, payload = _post(args.url, body, headers)
    answer = _verifier_answer(args.url, status, payload)
    print(f"HTTP {status} {payload}")
    if status == 200 and isinstance(answer.get("allowed"), bool):
        return 0 if answer["allowed"] else 1
    raise CommandError(_refusal(status, answer))


def _token(text: str) -> object:
    """A compact token as given; a Vault login object (it starts with '{') parsed from its JSON."""
    if not text.lstrip().startswith("{"):
        return text
    try:
        login = json.loads(text)
    except json.JSONDecodeError as error:
        raise CommandError(
            f"--token starts with '{{' but is not a JSON object: {error.msg} at character {error.pos}"
        ) from None
    if not isinstance(login, dict):
        raise CommandError("--token starts with '{' but is not a JSON object")
    return login


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")
    except urllib.error.URLError as error:
        raise CommandError(f"cannot reach {url}: {error.reason}") from None
    except TimeoutError:
        raise CommandError(f"{url} did not answer within {TIMEOUT_SECONDS} s") from None
    except OSError as error:  # e.g. the connection closed without an answer
        raise CommandError(f"no answer from {url}: {error}") from None


def _verifier_answer(url: str, status: int, payload: str) -> dict[str, Any]:
    """The answer's JSON object, or a CommandError that says what answered instead of a verifier."""
    try:
        answer = json.loads(payload)
    except json.JSONDecodeError:
        answer = None
    if isinstance(answer, dict):
        return answer
    if payload.lstrip().startswith("<"):
        code = _XML_ERROR_CODE.search(payload)
        what = f"XML ({code[1]})" if code else "XML"
        stacks = running_stacks()
        where = (
            f"the local stack's verifier is at {stacks[0].verify_url}"
            if stacks
            else "use the gateway's http://127.0.0.1:<serve --port>/v1/verify that `kuma-iam serve` prints"
        )
        raise CommandError(
            f"{url} answered HTTP {status} with {what}, not a verifier's JSON: that is an AWS API, such as "
            f"the embedded AWS (serve's --moto-port), not the verifier; {where}"
        )
    raise CommandError(f"{url} answered HTTP {status} with something other than JSON: is it /v1/verify?")


def _refusal(status: int, answer: dict[str, Any]) -> str:
    code = answer.get("error") or answer.get("message") or "no error code"
    message = answer.get("message") if answer.get("error") else None
    summary = f"HTTP {status} {code}" + (f": {message}" if message else "")
    if status == 200:
        return f"the answer is not a verifier's decision ({summary})"
    if status == 403:
        return (
            f"the API refused the call ({summary}): the signing credentials may not invoke it; "
            "sign with the control plane's"
        )
    if status == 404:
        return f"nothing answers at that path ({summary}): the verifier's route is POST /v1/verify"
    if status in (429, 503):
        return f"the verifier could not ask AWS ({summary}); try again in a moment"
    return f"the verifier refused the request ({summary})"
