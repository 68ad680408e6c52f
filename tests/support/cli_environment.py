"""The environment a `kuma-iam` subprocess runs with in tests: a user's shell, without our AWS settings."""

from __future__ import annotations

import os

# No credentials, profile or metadata service but what a test hands over.
ISOLATED = {
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def isolated_environment(**environment: str) -> dict[str, str]:
    """A subprocess environment without any AWS_* of ours: only `environment` and the isolation above.

    PYTHONUNBUFFERED goes too: a user's shell does not set it, and output buffering is part of what we test.
    """
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "KUMA_", "KMESH_")) and name != "PYTHONUNBUFFERED"
    }
    return {**kept, **ISOLATED, **environment}
