"""The answer each sample event must get, kept in one place: `events/<function>/expected.json`.

Every `events/<function>/<case>.json` is an event for the function of that folder (verifier ->
VerifierFunction), and `events/<function>/expected.json` maps each case to what its answer must contain:

    {"mesh-mismatch": {"statusCode": 200, "body": {"allowed": false, "reason": "mesh_mismatch"}}}

An answer matches when it has every expected key with a matching value: objects are compared key by key
(keys the answer has beyond these are free), lists item by item, anything else by equality, and a string
holding JSON (an API answer's `body`) is read as JSON when an object or list is expected there. The sam tier
(tests/sam), `make sam-local-invoke` (tools/sam-local/invoke.sh, through `python -m` of this module) and the
integration tier all read these files; a new function adds its events and its expected.json, nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXPECTED_FILE = "expected.json"


@dataclass(frozen=True)
class SampleEvent:
    """One committed event: events/<folder>/<case>.json."""

    folder: str
    case: str
    path: Path

    @property
    def function(self) -> str:
        return function_of(self.folder)

    @property
    def label(self) -> str:
        return f"{self.folder}/{self.case}"


def function_of(folder: str) -> str:
    """The template's function for an events folder: verifier -> VerifierFunction, tag-compliance ->
    TagComplianceFunction."""
    return "".join(part.capitalize() for part in folder.replace("-", "_").split("_")) + "Function"


def sample_events(events_dir: Path) -> list[SampleEvent]:
    """Every event under events_dir, sorted; expected.json files are not events."""
    return [
        SampleEvent(path.parent.name, path.stem, path)
        for path in sorted(events_dir.glob("*/*.json"))
        if path.name != EXPECTED_FILE
    ]


def expected_answers(events_dir: Path) -> dict[str, dict[str, Any]]:
    """{"<folder>/<case>": expected answer} from every events/<folder>/expected.json."""
    answers: dict[str, dict[str, Any]] = {}
    for expected_file in sorted(events_dir.glob(f"*/{EXPECTED_FILE}")):
        cases = json.loads(expected_file.read_text())
        if not isinstance(cases, dict):
            raise ValueError(f"{expected_file}: not an object of case -> expected answer")
        for case, answer in cases.items():
            answers[f"{expected_file.parent.name}/{case}"] = answer
    return answers


def mismatches(expected: Any, actual: Any, where: str = "answer") -> list[str]:
    """What in `actual` differs from `expected` (see the module docstring); empty when it matches."""
    if isinstance(expected, dict | list) and isinstance(actual, str):
        try:
            actual = json.loads(actual)
        except json.JSONDecodeError:
            return [f"{where}: expected JSON, got {_short(actual)}"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {_short(actual)}"]
        problems: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{where}.{key}: missing (expected {_short(value)})")
            else:
                problems += mismatches(value, actual[key], f"{where}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: expected {_short(expected)}, got {_short(actual)}"]
        return [
            problem
            for index, (item, got) in enumerate(zip(expected, actual, strict=True))
            for problem in mismatches(item, got, f"{where}[{index}]")
        ]
    if expected != actual or type(expected) is not type(actual):
        return [f"{where}: expected {_short(expected)}, got {_short(actual)}"]
    return []


def describe(expected: Any) -> str:
    """A few words for an expected answer: `allow`, a deny reason, `HTTP 400 invalid_request`, `no findings`,
    `kuma-type-invalid on typo-task`, `24 findings`, `error invalid_event`, `token kid 2`, `keys`, `denied
    caller_mismatch`..."""
    if not isinstance(expected, dict):
        return _short(expected)
    if isinstance(expected.get("findings"), list):  # a compliance summary
        return _describe_summary(expected)
    status = expected.get("statusCode")
    body = expected.get("body")
    body = body if isinstance(body, dict) else {}
    if body.get("error") == "denied" and "reason" in body:  # the token issuer's refusal, a 403
        return f"denied {body['reason']}"
    if status not in (None, 200):
        return f"HTTP {status} {body.get('error', '')}".strip()
    if body.get("allowed") is True:
        return "allow"
    if "kid" in body:  # a token the issuer hands out (its value differs each time)
        return f"token kid {body['kid']}"
    if "signingKid" in body:  # the issuer's published keys
        return "keys"
    if "reason" in body:
        return str(body["reason"])
    return _short(expected)


def _describe_summary(expected: dict[str, Any]) -> str:
    error = expected.get("error")
    if isinstance(error, dict):
        return f"error {error.get('code')}"
    findings = [finding for finding in expected["findings"] if isinstance(finding, dict)]
    if not findings:
        return "no findings"
    if len(findings) > 2:
        return f"{len(findings)} findings"
    return ", ".join(f"{finding.get('rule')} on {finding.get('roleName')}" for finding in findings)


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- `python -m kuma_iam_cli.local.expected`: the checks tools/sam-local/invoke.sh runs ------------------


def _check(events_dir: Path, label: str, answer_file: Path) -> tuple[bool, str]:
    expected = expected_answers(events_dir).get(label)
    if expected is None:
        return False, f"no expected answer for {label} in events/{label.split('/')[0]}/{EXPECTED_FILE}"
    try:
        text = answer_file.read_text().strip()
        if not text:
            return False, "no answer: the function printed nothing"
        actual = json.loads(text.splitlines()[-1])  # the result is the last line; logs may come before
    except (OSError, json.JSONDecodeError) as error:
        return False, f"no answer to read ({error})"
    problems = mismatches(expected, actual)
    return (not problems), "; ".join(problems) if problems else describe(expected)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kuma_iam_cli.local.expected", description="check sample-event answers"
    )
    parser.add_argument("--events", type=Path, required=True, help="the committed events/ folder")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="print every event as <folder>/<case> <function>")
    listing.add_argument("--validate", nargs="*", default=[], help="event paths to check are events")
    check = commands.add_parser("check", help="one answer: print PASS or FAIL and why; exit 1 on FAIL")
    check.add_argument("label", help="<folder>/<case>")
    check.add_argument("answer", type=Path, help="file holding the function's answer (its last line)")
    args = parser.parse_args(argv)

    if args.command == "list":
        return _list(args.events, args.validate)
    passed, detail = _check(args.events, args.label, args.answer)
    print(f"{'PASS' if passed else 'FAIL'} {detail}")
    return 0 if passed else 1


def _list(events_dir: Path, wanted: Sequence[str]) -> int:
    """Every event, or the events `wanted` names (paths); an unknown one is an error listing valid ones."""
    events = sample_events(events_dir)
    by_path = {event.path.resolve(): event for event in events}
    chosen = events
    if wanted:
        unknown = [path for path in wanted if Path(path).resolve() not in by_path]
        if unknown:
            valid = "\n".join(f"  {event.path.relative_to(events_dir.parent)}" for event in events)
            print(f"not an event: {', '.join(unknown)}\nvalid events:\n{valid}", file=sys.stderr)
            return 2
        chosen = [by_path[Path(path).resolve()] for path in wanted]
    for event in chosen:
        print(event.label, event.function)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
