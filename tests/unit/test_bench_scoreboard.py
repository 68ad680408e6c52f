"""The committed scoreboard is one run's: README shows the table bench/results.json holds, with the date and
machine it was measured on, beside the chart; every figure has its baseline, ratio and target."""

from __future__ import annotations

import json
from typing import Any

import pytest

from support.project_files import REPO

RESULTS = REPO / "bench" / "results.json"


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(RESULTS.read_text())
    return document


def test_readme_shows_the_committed_table_its_date_machine_and_chart(results: dict[str, Any]) -> None:
    readme = (REPO / "README.md").read_text()
    assert results["readme_table"] in readme
    assert results["measured_at"][:10] in readme
    assert f"{results['machine']['cpus']} CPUs" in readme
    assert "bench/results.png" in readme
    assert (REPO / "bench" / "results.png").stat().st_size > 10_000


def test_every_figure_says_what_it_is_measured_against(results: dict[str, Any]) -> None:
    sections = {figure["section"] for figure in results["figures"]}
    assert {"verifier", "cold start", "burst", "sweep", "tokens", "memory"} <= sections
    for figure in results["figures"]:
        if figure["baseline"] is not None:
            assert figure["ratio"] == pytest.approx(figure["value"] / figure["baseline"], rel=1e-3)
        if figure["target"] is not None and figure["met"] is False:
            assert figure["note"] or figure["section"] in ("verifier", "cold start"), figure["name"]
    assert results["targets"]["of"] == sum(1 for figure in results["figures"] if figure["target"])
    assert results["load_average"], "the load during the run is part of the record"
