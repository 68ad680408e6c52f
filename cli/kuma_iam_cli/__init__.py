"""The `kuma-iam` command line and the local stack (embedded AWS, gateway): tools beside the Lambda layer,
never shipped in it."""
