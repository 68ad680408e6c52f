"""Where the project's own files are, for tests that read, build or load them."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VERIFIER_HANDLER = REPO / "functions" / "verifier" / "app.py"
TOKEN_ISSUER_HANDLER = REPO / "functions" / "token_issuer" / "app.py"
COMPLIANCE_HANDLER = REPO / "functions" / "tag_compliance" / "app.py"
