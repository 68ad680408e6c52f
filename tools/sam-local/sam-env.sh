#!/usr/bin/env bash
# Print the shell environment `sam local` needs to run functions against the embedded AWS that
# `kuma-iam serve --host 0.0.0.0` started (its state file: .local/world.json), for `eval`:
#   eval "$(tools/sam-local/sam-env.sh)"      # or: tools/sam-local/sam-env.sh path/to/world.json [Function]
# The keys are the verifier's, or with Function=TagComplianceFunction the compliance function's, or with
# TokenIssuerFunction the token issuer's (tokens.json beside the world file): each function has its own
# principal in the demo world, as each has its own role in AWS.
# Why: `sam local` hands the function the credentials of its own environment (the --env-vars file can
# only override variables the template declares, and no template can declare AWS_ACCESS_KEY_ID), and it
# resolves AWS::AccountId by asking STS who those credentials are: AWS_ENDPOINT_URL_STS makes that the
# embedded AWS (instead of a slow failing call to the real STS, and the default 123456789012).
set -euo pipefail
WORLD="${1:-.local/world.json}"
FUNCTION="${2:-VerifierFunction}"
[ -s "$WORLD" ] || { echo "sam-env.sh: $WORLD not found: start 'kuma-iam serve --host 0.0.0.0' first" >&2; exit 1; }
python3 - "$WORLD" "$FUNCTION" <<'PY'
import json, shlex, sys
import os
world = json.load(open(sys.argv[1]))
if sys.argv[2] == "TokenIssuerFunction":
    principal = json.load(open(os.path.join(os.path.dirname(sys.argv[1]), "tokens.json")))["issuer"]
else:
    principal = world["compliance" if sys.argv[2] == "TagComplianceFunction" else "verifier"]
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
