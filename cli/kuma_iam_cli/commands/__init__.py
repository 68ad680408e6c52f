"""One module per `kuma-iam` subcommand, listed in main.COMMANDS; each has `register(subparsers)`.

What every subcommand does (tests/unit/test_cli_arguments.py drives each registered one):
- `commands.add_parser(name, help=<one line>, description=<what it does, whose credentials, exit status>)`;
  every option has `help=` (main's formatter adds its default), and values are checked at parse time with
  the types of kuma_iam_cli.arguments (http_url / api_url(route), port, server_id, account_id, role_name,
  go_duration, mesh_name, token_id, table_name, dns_label(...)) or your own raising ArgumentTypeError.
  A subcommand with actions of its own (`tokens revoke`) gives each action the same: help, description.
- `run(args)` returns 0 or 1 only for an answer (it may print the answer, a denial included, on one line
  of its own), and raises kuma_iam_cli.errors.CommandError with one line that says what happened and what
  to do for anything else; main() turns every error into exit status 2
  and `kuma-iam: <message>` (botocore errors, OSError and the core's typed errors need no catching).
- AWS credentials come from kuma_iam_cli.aws_credentials.default_credentials, whose error points to a
  running local stack's credential files; a local stack's state is found with local/state.py.
"""
