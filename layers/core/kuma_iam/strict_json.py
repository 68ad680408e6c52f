"""JSON parsing for untrusted input: duplicate keys and runaway nesting are errors, not last-one-wins."""

from __future__ import annotations

import json
from typing import Any

from kuma_iam.errors import InvalidRequest


def load_strict_json(raw: bytes | str, what: str) -> Any:
    """Parse `raw`, naming `what` in the InvalidRequest for anything but one well-formed JSON document."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise InvalidRequest(f"{what} is not valid UTF-8") from None
    try:
        if text.startswith("\ufeff"):  # as json.loads refuses it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        return _STRICT_DECODER.decode(text)
    except RecursionError:
        raise InvalidRequest(f"{what} JSON is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, and duplicate keys from the hook
        raise InvalidRequest(f"{what} is not valid JSON: {error}") from None


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        # Two parsers may pick different duplicates; refusing them leaves nothing to disagree on.
        raise ValueError("duplicate key")
    return document


# One decoder for every call: json.loads with a hook builds a decoder and its scanner each time.
_STRICT_DECODER = json.JSONDecoder(object_pairs_hook=_reject_duplicate_keys)
