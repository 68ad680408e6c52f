"""What `sam build` ships: the layer carries kuma_iam and its runtime dependencies; functions, their code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str
from packaging.utils import canonicalize_name

from support.project_files import REPO
from support.sam_stack import SamStack

LOCK = REPO / "layers" / "core" / "requirements.txt"


def _resources(template: Path, resource_type: str) -> dict[str, dict[str, Any]]:
    decoded, problems = decode_str(template.read_text())
    assert not problems, problems
    return {
        name: resource.get("Properties", {})
        for name, resource in decoded["Resources"].items()
        if resource["Type"] == resource_type
    }


def _files(folder: Path) -> set[str]:
    return {
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_layer_carries_the_package_and_its_runtime_dependencies(sam_stack: SamStack) -> None:
    # Given the built CoreLayer
    (layer_uri,) = [
        props["ContentUri"]
        for props in _resources(sam_stack.build_template, "AWS::Serverless::LayerVersion").values()
    ]
    python = sam_stack.build_template.parent / layer_uri / "python"

    # Then kuma_iam sits where Lambda puts layers on sys.path (/opt/python), without packaging leftovers
    assert (python / "kuma_iam" / "__init__.py").is_file()
    assert not list(python.glob("kuma_iam*.egg-info")), "editable-install metadata leaked into the layer"
    # And only what Lambda runs: the command line and the local stack (moto, the gateway) stay out
    assert not (python / "kuma_iam_cli").exists()
    assert not (python / "kuma_iam" / "local").exists()
    assert not list(python.glob("moto*")), "the embedded AWS leaked into the layer"
    # And exactly the locked versions are installed (the lock's hashes checked by pip on the way in),
    # built for the Lambda runtime (CPython 3.13, x86_64)
    dist_infos = [dist.name.removesuffix(".dist-info").rsplit("-", 1) for dist in python.glob("*.dist-info")]
    installed = {canonicalize_name(name): version for name, version in dist_infos}
    locked = {
        canonicalize_name(name): version
        for name, version in re.findall(r"^([A-Za-z0-9][\w.-]*)==(\S+)", LOCK.read_text(), re.MULTILINE)
    }
    assert locked
    assert {name: installed.get(name) for name in locked} == locked
    assert list((python / "pydantic_core").glob("*.cpython-313-x86_64-linux-gnu.so"))


def test_functions_carry_only_their_own_code(sam_stack: SamStack) -> None:
    # Given each function of the source template and its built folder
    source = _resources(REPO / "template.yaml", "AWS::Serverless::Function")
    built = _resources(sam_stack.build_template, "AWS::Serverless::Function")
    assert source.keys() == built.keys()
    for name, props in source.items():
        # Then the built folder holds exactly the function's source files: no dependencies, no repo
        assert _files(sam_stack.build_template.parent / built[name]["CodeUri"]) == _files(
            REPO / props["CodeUri"]
        ), name
