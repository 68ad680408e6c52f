"""Upstream timeouts in tests: patient where a test is not about them, exact where it is.

moto and the stand-in AWS servers run in the test process. On a loaded machine that process stalls for
seconds at a time (one collection of its heap, at a fraction of a core, took 3.9 s at load 10), and the
verifier's own upstream timeout (2.5 s at most, for Lambda's budget) would turn such a stall into a 503:
a speed target for moto, not a property of the verifier. So:
- a verifier, token issuer or token provisioner built without KUMA_IAM_UPSTREAM_TIMEOUT_SECONDS in its
  environment waits PATIENT_SECONDS (`patient_verifier_from_env`, `patient_token_issuer_from_env`,
  `patient_provisioner_function_from_env`; the integration tier's `verify`, `issuer` and `provisioner`
  fixtures give them to the handlers);
- a test about timeouts sets that variable, lets its stand-in hang for HANG_SECONDS, calls the verifier
  `without_collection_pauses()` and asserts that it answered within CEILING_SECONDS: a generous "did not
  hang", never a speed target (speed lives in `make bench`).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from pydantic import BaseModel

from kuma_iam.config import TokenIssuerSettings, TokenProvisionerSettings, VerifierSettings
from kuma_iam.provisioning.service import ProvisionerFunction, build_provisioner_function
from kuma_iam.tokens.issuer import TokenIssuer, build_token_issuer
from kuma_iam.verify import IdentityVerifier, build_verifier

TIMEOUT_VARIABLE = "KUMA_IAM_UPSTREAM_TIMEOUT_SECONDS"
# What the verifier waits for each AWS call in a test that is not about timeouts.
PATIENT_SECONDS = 30.0
# What the verifier waits in production (and in a test about timeouts that sets no other value).
DEFAULT_SECONDS: float = VerifierSettings.model_fields["upstream_timeout_seconds"].default
# A stand-in that hangs holds on far longer than the ceiling: an answer within the ceiling can only be the
# verifier giving up by itself (the stand-in lets go when it stops).
HANG_SECONDS = 120.0
# "Did not hang": a quiet machine answers a hang in a few seconds at most (two attempts and a back-off).
CEILING_SECONDS = 30.0


def patient[Settings: BaseModel](settings: Settings, environ: Mapping[str, str]) -> Settings:
    """`settings` (any with an `upstream_timeout_seconds`) waiting PATIENT_SECONDS, unless `environ` sets
    the timeout itself. A copy, not validated: the production cap does not apply to a test's moto."""
    if TIMEOUT_VARIABLE in environ:
        return settings
    return settings.model_copy(update={"upstream_timeout_seconds": PATIENT_SECONDS})


def patient_verifier_from_env(environ: Mapping[str, str]) -> IdentityVerifier:
    """kuma_iam.verify.verifier_from_env, patient unless `environ` sets the upstream timeout."""
    return build_verifier(patient(VerifierSettings.from_env(environ), environ))


def patient_token_issuer_from_env(environ: Mapping[str, str]) -> TokenIssuer:
    """kuma_iam.tokens.issuer.token_issuer_from_env, patient unless `environ` sets the upstream timeout."""
    return build_token_issuer(patient(TokenIssuerSettings.from_env(environ), environ))


def patient_provisioner_function_from_env(environ: Mapping[str, str]) -> ProvisionerFunction:
    """kuma_iam.provisioning.service.provisioner_function_from_env, patient unless `environ` sets the
    upstream timeout."""
    return build_provisioner_function(patient(TokenProvisionerSettings.from_env(environ), environ))


@contextmanager
def without_collection_pauses() -> Iterator[None]:
    """Python's garbage collector paused while a timeout is under test: the stand-ins share this process,
    and a collection that stalls them for seconds would look like AWS not answering."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
