"""Translate template.yaml into plain CloudFormation, so checkov sees what SAM generates.

checkov reads SAM resources as written, and drops resources whose Condition is false under the
parameter defaults (the replay table, the alarm e-mail). The translated template has the generated
IAM role, API stage and Lambda permission too; `--set Name=Value` switches the optional parts on.

    python tools/lint-template/translate.py template.yaml --set ReplayProtection=Enabled > out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str
from samtranslator.translator.transform import transform

# The translator only checks that code locations look like S3 URIs; nothing is uploaded.
_PLACEHOLDER_CODE = {
    "AWS::Serverless::Function": ("CodeUri", "s3://placeholder/function.zip"),
    "AWS::Serverless::LayerVersion": ("ContentUri", "s3://placeholder/layer.zip"),
}


class _NoManagedPolicies:
    """SAM asks IAM for managed policy ARNs only when a template names one by its short name."""

    def load(self) -> dict[str, str]:
        return {}


def translate(template_text: str, defaults: dict[str, str]) -> dict[str, Any]:
    decoded, problems = decode_str(template_text)
    if problems:
        raise SystemExit("cannot parse the template: " + "; ".join(str(problem) for problem in problems))
    template: dict[str, Any] = json.loads(json.dumps(decoded))
    parameters = template.get("Parameters", {})
    for name, value in defaults.items():
        if name not in parameters:
            raise SystemExit(f"the template has no parameter {name}")
        parameters[name]["Default"] = value
    for resource in template.get("Resources", {}).values():
        placeholder = _PLACEHOLDER_CODE.get(resource.get("Type"))
        if placeholder is not None:
            resource.setdefault("Properties", {})[placeholder[0]] = placeholder[1]
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the translator needs a region for ARNs
    translated: dict[str, Any] = transform(template, {}, _NoManagedPolicies())
    return translated


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", type=Path)
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="parameter default to use"
    )
    args = parser.parse_args()
    defaults = dict(item.split("=", 1) for item in args.set)
    json.dump(translate(args.template.read_text(), defaults), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
