#!/usr/bin/env bash
# Print the shell environment `sam local` needs to run a function against the embedded AWS that
# `kuma-iam serve --host 0.0.0.0` started (its world file: .local/<moto port>/world.json), for `eval`:
#   eval "$(tools/sam-local/sam-env.sh)"      # the stack on port 5000 of this repository, the verifier
#   eval "$(tools/sam-local/sam-env.sh /path/to/.local/5001/world.json TagComplianceFunction)"
# The keys are the function's own principal's (the verifier's, tag compliance's, or the token issuer's,
# kept in tokens.json beside the world file): each function has its own principal in the demo world, as
# each has its own role in AWS.
# Why: `sam local` hands the function the credentials of its own environment (the --env-vars file can
# only override variables the template declares, and no template can declare AWS_ACCESS_KEY_ID), and it
# resolves AWS::AccountId by asking STS who those credentials are: AWS_ENDPOINT_URL_STS makes that the
# embedded AWS (instead of a slow failing call to the real STS, and the default 123456789012).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORLD="${1:-$REPO/.local/5000/world.json}"
FUNCTION="${2:-VerifierFunction}"
[ -s "$WORLD" ] || { echo "sam-env.sh: $WORLD not found: start 'kuma-iam serve --host 0.0.0.0' first" >&2; exit 1; }
python3 - "$WORLD" "$FUNCTION" <<'PY'
import json, os, shlex, sys
world_file, function = sys.argv[1], sys.argv[2]
world = json.load(open(world_file))
# The world's principal of each function (kuma_iam_cli.local.events.FUNCTION_PRINCIPALS says the same).
principals = {"VerifierFunction": "verifier", "TagComplianceFunction": "compliance", "TokenIssuerFunction": "issuer"}
if function not in principals:
    sys.exit(f"sam-env.sh: {function}: no principal for it in the demo world (one of: {', '.join(principals)})")
if principals[function] == "issuer":
    tokens_file = os.path.join(os.path.dirname(os.path.abspath(world_file)), "tokens.json")
    if not os.path.isfile(tokens_file):
        sys.exit(f"sam-env.sh: {tokens_file} not found: the token issuer's keys are written by 'kuma-iam serve'")
    principal = json.load(open(tokens_file))["issuer"]
else:
    principal = world[principals[function]]
values = {
    "AWS_ACCESS_KEY_ID": principal["access_key_id"],
    "AWS_SECRET_ACCESS_KEY": principal["secret_access_key"],
    "AWS_REGION": world["region"],
    "AWS_DEFAULT_REGION": world["region"],
    "AWS_ENDPOINT_URL_STS": world["endpoint_url"],
}
for name, value in values.items():
    print(f"export {name}={shlex.quote(value)}")
print("unset AWS_PROFILE AWS_SESSION_TOKEN")
PY
