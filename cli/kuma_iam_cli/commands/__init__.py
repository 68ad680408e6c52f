"""One module per `kuma-iam` subcommand; each `register`s its parser and the function that runs it."""
