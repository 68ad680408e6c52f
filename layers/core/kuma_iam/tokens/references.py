"""Where each numbered signing key lives (`KUMA_IAM_SIGNING_KEYS`: `1=arn:aws:secretsmanager:…,2=alias/…`):
parsed with the settings, so apart from the keys themselves (keys.py), which need cryptography: every
function's settings module imports this, and the verifier's cold start must not load cryptography.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

# Older control planes parse the kid as an integer: a decimal serial without sign or leading zero.
KID = re.compile(r"[1-9][0-9]{0,8}", re.ASCII)
_KMS_KEY_ID = r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})"
_ALIAS = r"alias/[A-Za-z0-9/_-]{1,250}"


def _arn_head(service: str) -> str:
    return rf"arn:[a-z-]{{3,16}}:{service}:[a-z0-9-]{{1,32}}:[0-9]{{12}}:"


KMS_KEY_REFERENCE = re.compile(
    rf"{_KMS_KEY_ID}|{_ALIAS}|{_arn_head('kms')}(?:key/{_KMS_KEY_ID}|{_ALIAS})", re.ASCII
)
SECRET_ARN = re.compile(_arn_head("secretsmanager") + r"secret:[A-Za-z0-9/_+=.@-]{1,512}", re.ASCII)


class KeySource(StrEnum):
    KMS = "kms"
    SECRETS_MANAGER = "secretsmanager"


@dataclass(frozen=True, slots=True)
class KeyReference:
    """Where the key numbered `kid` lives: a KMS key (id, alias or ARN) or a secret holding a Kuma PEM key."""

    kid: int
    source: KeySource
    location: str

    def __str__(self) -> str:
        return f"kid {self.kid} ({self.location})"


def parse_signing_keys(text: str, *, variable: str = "KUMA_IAM_SIGNING_KEYS") -> tuple[KeyReference, ...]:
    """`kid=location` pairs separated by commas, sorted by kid; ValueError naming the first bad pair."""
    references: dict[int, KeyReference] = {}
    for pair in (part.strip() for part in text.split(",")):
        if not pair:
            continue
        kid_text, separator, location = (piece.strip() for piece in pair.partition("="))
        if not separator:
            raise ValueError(f"{pair[:64]!r} is not kid=key (e.g. 1=alias/kuma-iam-dataplane-tokens)")
        if not KID.fullmatch(kid_text):
            raise ValueError(
                f"kid {kid_text[:16]!r} is not a decimal serial number 1, 2, … (no leading zero)"
            )
        kid = int(kid_text)
        if kid in references:
            raise ValueError(f"kid {kid} is given twice")
        if SECRET_ARN.fullmatch(location):
            source = KeySource.SECRETS_MANAGER
        elif KMS_KEY_REFERENCE.fullmatch(location):
            source = KeySource.KMS
        else:
            raise ValueError(
                f"kid {kid}: {location[:96]!r} is neither a KMS key (id, alias/…, or its ARN) nor the ARN "
                "of a Secrets Manager secret"
            )
        if any(reference.location == location for reference in references.values()):
            raise ValueError(f"kid {kid}: {location[:96]!r} is already another kid's key")
        references[kid] = KeyReference(kid, source, location)
    if not references:
        raise ValueError(f"{variable} names no key")
    return tuple(references[kid] for kid in sorted(references))
