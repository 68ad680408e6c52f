"""What a verifier container imports before its first answer: nothing it does not use. Each of these cost
every cold start tens of milliseconds (make bench, "cold start"), and a shared module can pull one back in
unnoticed (the token settings once brought cryptography into the verifier through kuma_iam.config).

The check is on who imports them, with the optional packages botocore picks up by itself when installed
(pyOpenSSL, awscrt: both import cryptography) as absent as in the Lambda layer, which does not ship them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support.project_files import REPO, VERIFIER_HANDLER

# boto3: resources and S3 transfers (the functions use botocore's session); cryptography: the token signers;
# Powertools' event handler: every resolver and event type (routing is kuma_iam.http's).
NOT_ON_THE_VERIFIERS_PATH = ("boto3", "s3transfer", "cryptography", "aws_lambda_powertools.event_handler")

# Imports the handler as Lambda does, noting for each watched package which module first asked for it.
_IMPORT_THE_HANDLER = """
import importlib.util, json, sys
WATCHED = tuple(json.loads(sys.argv[1]))
asked = {}

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("OpenSSL", "awscrt"):
            raise ModuleNotFoundError(name)  # not in the layer: botocore goes without, as on Lambda
        for package in WATCHED:
            if name == package or name.startswith(package + "."):
                frame = sys._getframe(1)
                while frame and frame.f_code.co_filename.startswith(("<frozen", "<string>")):
                    frame = frame.f_back
                asked.setdefault(package, frame.f_globals.get("__name__") if frame else "?")
        return None

sys.meta_path.insert(0, Watch())
spec = importlib.util.spec_from_file_location("app", sys.argv[2])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps({"asked": asked, "modules": sorted(sys.modules)}))
"""


@pytest.fixture(scope="module")
def imports() -> dict[str, object]:
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            _IMPORT_THE_HANDLER,
            json.dumps(NOT_ON_THE_VERIFIERS_PATH),
            str(VERIFIER_HANDLER),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, object] = json.loads(completed.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize("package", NOT_ON_THE_VERIFIERS_PATH)
def test_nothing_of_ours_imports_on_the_verifiers_path(package: str, imports: dict[str, object]) -> None:
    asked = imports["asked"]
    assert isinstance(asked, dict)
    importer = asked.get(package)
    assert importer is None or not str(importer).startswith(("kuma_iam", "app")), (package, importer)


def test_the_check_sees_what_is_imported(imports: dict[str, object]) -> None:
    # The control: what the verifier does use is there
    modules = imports["modules"]
    assert isinstance(modules, list)
    assert {"botocore.session", "pydantic", "aws_lambda_powertools.logging", "kuma_iam.verify"} <= set(
        modules
    )
