"""One fresh interpreter's measurement, run by `make bench` as Lambda runs a container: the standard library,
the layer's packages and the function's own folder on the path, nothing else (no bench, no test support).

    python -S lambda_child.py <mode> <spec.json> <result.json>

Modes: `import` (a handler's, a module's or a probe's import time), `cold-verify` (import the verifier's
handler and answer one request), `cold-forward` (the baseline: a minimal botocore-only forwarder answering
the same request), `memory` (RSS after each of two runs of N requests, through a handler or the forwarder).
The spec names the handler, the events and the counts; the result is a JSON object.
"""

import base64
import importlib
import json
import sys
import time
import uuid


class LambdaContext:
    """What Powertools reads of Lambda's context object."""

    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:111111111111:function:bench"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 25_000


def load_handler(folder):
    """Import `app` from a function's folder, as Lambda does for Handler: app.lambda_handler."""
    sys.path.insert(0, folder)
    return importlib.import_module("app").lambda_handler


def rss_kib():
    """Current and peak resident memory, from /proc (the kernel's own accounting)."""
    status = {}
    with open("/proc/self/status") as lines:
        for line in lines:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                status[name] = int(value.split()[0])
    return status["VmRSS"], status["VmHWM"]


class BotocoreForwarder:
    """The baseline: what the least code answering a verification with botocore alone does. It forwards the
    token's signed request to STS, reads the role name out of the answer, reads the role's tags with one
    GetRole (cached, as any forwarder would), compares the mesh, and answers. No checks, logs or metrics."""

    def __init__(self):
        import os
        import re

        import botocore.session
        from botocore.awsrequest import AWSRequest
        from botocore.httpsession import URLLib3Session

        self._request = AWSRequest
        self._http = URLLib3Session()
        self._sts_url = os.environ["AWS_ENDPOINT_URL_STS"].rstrip("/") + "/"
        self._iam = botocore.session.get_session().create_client("iam")
        self._role = re.compile(r"<Arn>arn:aws:sts::\d{12}:assumed-role/([^/<]+)/")
        self._roles = {}

    def __call__(self, event, context):
        request = json.loads(event["body"])
        encoded = request["token"].removeprefix("kuma-aws-v1.")
        signed = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        answer = self._http.send(
            self._request("POST", self._sts_url, data=signed["body"], headers=signed["headers"]).prepare()
        )
        role_name = self._role.search(answer.text).group(1)
        if role_name not in self._roles:
            role = self._iam.get_role(RoleName=role_name)["Role"]
            self._roles[role_name] = {tag["Key"]: tag["Value"] for tag in role.get("Tags", [])}
        allowed = self._roles[role_name].get("kuma.io/mesh") == request["dataplane"]["mesh"]
        return {
            "statusCode": 200,
            "body": json.dumps({"allowed": allowed, "identity": {"roleName": role_name}}),
        }


def fresh_event(event):
    """The same request with its own id, as each API Gateway call and each EventBridge delivery has."""
    changed = dict(event)
    if "requestContext" in event:
        changed["requestContext"] = {**event["requestContext"], "requestId": str(uuid.uuid4())}
    if "id" in event:
        changed["id"] = str(uuid.uuid4())
    return changed


def check(answer, expect):
    """Every answer is checked: a measurement of wrong answers would measure nothing."""
    if expect == "allowed":
        body = json.loads(answer["body"])
        if answer["statusCode"] != 200 or body.get("allowed") is not True:
            raise SystemExit(f"expected an allow, got {answer}")
    elif expect == "token":
        body = json.loads(answer["body"])
        if answer["statusCode"] != 200 or not body.get("token"):
            raise SystemExit(f"expected a token, got {answer}")
    elif expect == "summary":
        if not isinstance(answer, dict) or answer.get("evaluated") != 1:
            raise SystemExit(f"expected a summary of one role, got {answer}")
    else:
        raise SystemExit(f"unknown expectation {expect}")


def main(started):
    """`started`: the clock a fresh container's INIT starts on, read first thing in this process."""
    mode, spec_path, result_path = sys.argv[1:4]
    with open(spec_path) as spec_file:
        spec = json.load(spec_file)
    result = {}
    if mode == "import":
        if "module" in spec:
            importlib.import_module(spec["module"])
        elif "code" in spec:
            exec(spec["code"], {"__name__": "probe"})  # noqa: S102 - the bench's own probe (an import and a model)
        else:
            load_handler(spec["folder"])
        result["seconds"] = time.perf_counter() - started
    elif mode in ("cold-verify", "cold-forward"):
        handler = load_handler(spec["folder"]) if mode == "cold-verify" else BotocoreForwarder()
        result["import_seconds"] = time.perf_counter() - started
        check(handler(spec["events"][0], LambdaContext()), spec["expect"])
        result["seconds"] = time.perf_counter() - started
    elif mode == "memory":
        handler = load_handler(spec["folder"]) if spec.get("folder") else BotocoreForwarder()
        events = spec["events"]
        result["imported_kib"] = rss_kib()[0]
        for round_name in ("first", "second"):
            for index in range(spec["requests"]):
                check(handler(fresh_event(events[index % len(events)]), LambdaContext()), spec["expect"])
            result[f"{round_name}_rss_kib"], result[f"{round_name}_peak_kib"] = rss_kib()
    else:
        raise SystemExit(f"unknown mode {mode}")
    with open(result_path, "w") as result_file:
        json.dump(result, result_file)


if __name__ == "__main__":
    main(time.perf_counter())
