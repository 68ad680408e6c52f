"""What `GET /v1/keys` answers: every published public key, as JWKS and as ready-to-paste kuma-cp settings.

`dpServer.authn.dpProxy.dpToken.validator.publicKeys` takes `{kid, mesh, key}` per mesh, and
`dpServer.authn.zoneProxy.zoneToken.validator.publicKeys` takes `{kid, key}`; `key` is a PKCS#1 PEM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kuma_iam.tokens.keys import KeySet


def published_keys(
    dataplane: KeySet, meshes: Sequence[str], zone: KeySet | None, zone_name: str | None
) -> dict[str, Any]:
    dataplane_keys = dataplane.published()
    zone_keys = zone.published() if zone is not None else []
    return {
        "dpServer": {
            "authn": {
                "dpProxy": {
                    "dpToken": {
                        "validator": {
                            "publicKeys": [
                                {"kid": key.kid, "mesh": mesh, "key": key.pem()}
                                for mesh in meshes
                                for key in dataplane_keys
                            ]
                        }
                    }
                },
                "zoneProxy": {
                    "zoneToken": {
                        "validator": {"publicKeys": [{"kid": key.kid, "key": key.pem()} for key in zone_keys]}
                    }
                },
            }
        },
        "jwks": {"keys": [key.jwk() for key in dataplane_keys]},
        "zoneJwks": {"keys": [key.jwk() for key in zone_keys]},
        "signingKid": {"dataplane": dataplane.signing_kid, "zone": zone.signing_kid if zone else None},
        "meshes": list(meshes),
        "zone": zone_name,
    }
