"""The sidecar's identity token: its encodings, the checks before any network call, and the STS forward."""
