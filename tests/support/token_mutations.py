"""Read a signed request, change it one thing at a time, and write its compact encoding by hand.

Nothing here signs again: a changed request keeps the signature it had, which only STS (or moto) checks.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from kuma_iam.identity.token import COMPACT_PREFIX, SignedRequest

AUTHORIZATION = re.compile(
    r"^(?P<algorithm>\S+) Credential=(?P<key>[^/]+)/(?P<date>[^/]+)/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request, SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>\S+)$"
)


# --- reading ------------------------------------------------------------------------------------------------


def header(request: SignedRequest, name: str) -> str:
    """The first value of the header of that name, case-insensitively."""
    return next(value for key, value in request.headers if key.lower() == name.lower())


def signed_names(request: SignedRequest) -> list[str]:
    """The SignedHeaders of the Authorization header, in its order."""
    return _authorization(request)["signed"].split(";")


def signature_of(request: SignedRequest) -> str:
    return _authorization(request)["signature"]


def signing_time(request: SignedRequest) -> datetime:
    """The instant the request says it was signed (X-Amz-Date): token age is measured from here."""
    return datetime.strptime(header(request, "X-Amz-Date"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _authorization(request: SignedRequest) -> re.Match[str]:
    match = AUTHORIZATION.match(header(request, "Authorization"))
    assert match is not None
    return match


# --- one change at a time -----------------------------------------------------------------------------------


def with_header(request: SignedRequest, name: str, value: str | None) -> SignedRequest:
    """Replace (or, with None, drop) the header of that name, case-insensitively, keeping its position."""
    assert any(key.lower() == name.lower() for key, _ in request.headers), f"no {name} header to change"
    headers: list[tuple[str, str]] = []
    for key, old in request.headers:
        if key.lower() != name.lower():
            headers.append((key, old))
        elif value is not None:
            headers.append((key, value))
    return replace(request, headers=tuple(headers))


def setting(request: SignedRequest, name: str, value: str) -> SignedRequest:
    """The header of that name set to `value`: replaced where the request carries it, else added."""
    if any(key.lower() == name.lower() for key, _ in request.headers):
        return with_header(request, name, value)
    return adding(request, (name, value))


def adding(request: SignedRequest, *pairs: tuple[str, str]) -> SignedRequest:
    return replace(request, headers=(*request.headers, *pairs))


def with_authorization(request: SignedRequest, **fields: str) -> SignedRequest:
    """Rewrite parts of the Authorization header: algorithm, key, date, region, service, signed, signature."""
    parts = {**_authorization(request).groupdict(), **fields}
    value = (
        f"{parts['algorithm']} Credential={parts['key']}/{parts['date']}/{parts['region']}/{parts['service']}"
        f"/aws4_request, SignedHeaders={parts['signed']}, Signature={parts['signature']}"
    )
    return with_header(request, "Authorization", value)


def signing(request: SignedRequest, *names: str) -> SignedRequest:
    """SignedHeaders claims `names` too (sorted, as a canonical request lists them)."""
    return with_authorization(request, signed=";".join(sorted({*signed_names(request), *names})))


def not_signing(request: SignedRequest, *names: str) -> SignedRequest:
    """SignedHeaders no longer names `names`; the headers themselves stay."""
    return with_authorization(request, signed=";".join(n for n in signed_names(request) if n not in names))


def dated(request: SignedRequest, amz_date: str) -> SignedRequest:
    """X-Amz-Date and the credential scope's date both moved to `amz_date`."""
    return with_authorization(with_header(request, "X-Amz-Date", amz_date), date=amz_date[:8])


def at_url(request: SignedRequest, url: str) -> SignedRequest:
    return replace(request, url=url)


def moved_to(request: SignedRequest, host: str) -> SignedRequest:
    """URL and Host header both name `host`; the credential scope stays as signed."""
    return with_header(at_url(request, f"https://{host}/"), "Host", host)


def flip_last(text: str) -> str:
    """The same text with its last character changed (a signature or session token one digit off)."""
    return text[:-1] + ("0" if text[-1] != "0" else "1")


# --- the compact encoding, written by hand where a test needs what encode_compact never writes -------------


def compact_document(request: SignedRequest) -> dict[str, Any]:
    """The JSON object inside a compact token, before it is encoded."""
    return {
        "method": request.method,
        "url": request.url,
        "headers": dict(request.headers),
        "body": request.body,
    }


def compact_of(document: object) -> str:
    """A compact token of any JSON value (json.dumps' default spacing, unlike encode_compact)."""
    return compact_raw(json.dumps(document))


def compact_raw(content: str | bytes) -> str:
    """A compact token whose base64url part holds exactly `content` (text as UTF-8), valid JSON or not."""
    raw = content.encode() if isinstance(content, str) else content
    return COMPACT_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def read_compact(token: str) -> Any:
    """The JSON inside a compact token, read leniently (no strict checks), for a test to look at."""
    encoded = token.removeprefix(COMPACT_PREFIX)
    return json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
