"""Standard Kuma tokens for verified IAM identities: claims, RS256 JWTs, signers, keys, revocations."""
