"""What the functions print while they run (Powertools' JSON logs, EMF metrics, warnings) goes to a log file,
as Lambda sends it to CloudWatch Logs; everything else the local stack prints stays on the terminal.

The handlers run in the gateway's request threads and print through the process-wide sys.stdout/sys.stderr,
so both are replaced by streams that look at the writing thread: inside an invocation, the file; else the
terminal.
"""

from __future__ import annotations

import functools
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TextIO, cast

from aws_lambda_powertools.utilities.typing import LambdaContext

from kuma_iam.observability import logger as function_logger
from kuma_iam_cli.local.gateway import Handler


class _ThreadRoutedStream:
    """A text stream that writes to the function log from an invoking thread, else to the terminal."""

    def __init__(self, terminal: TextIO, function_log: TextIO, invoking: threading.local) -> None:
        self._terminal = terminal
        self._function_log = function_log
        self._invoking = invoking

    def write(self, text: str) -> int:
        target = self._function_log if getattr(self._invoking, "active", False) else self._terminal
        return target.write(text)

    def flush(self) -> None:
        for stream in (self._terminal, self._function_log):
            if not stream.closed:
                stream.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding...: the terminal's
        return getattr(self._terminal, name)


class FunctionOutput:
    """While entered, handlers wrapped by `invoking` write to `log_file`; the rest of the process does not."""

    def __init__(self, log_file: Path) -> None:
        self.log_file = log_file
        self._invoking = threading.local()
        self._file: TextIO | None = None
        self._saved: tuple[TextIO, TextIO] | None = None

    def __enter__(self) -> Self:
        self._file = self.log_file.open("a", encoding="utf-8", buffering=1)
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout = cast(TextIO, _ThreadRoutedStream(self._saved[0], self._file, self._invoking))
        sys.stderr = cast(TextIO, _ThreadRoutedStream(self._saved[1], self._file, self._invoking))
        # Powertools' handler kept the sys.stdout of its import time: point it at the routed one.
        _set_stream(function_logger.registered_handler, sys.stdout)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved
            _set_stream(function_logger.registered_handler, sys.stdout)
            self._saved = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def invoking(self, handler: Handler) -> Handler:
        """`handler`, with whatever it prints going to the log file."""

        @functools.wraps(handler)
        def invoke(event: dict[str, Any], context: LambdaContext) -> Any:
            self._invoking.active = True
            try:
                return handler(event, context)
            finally:
                self._invoking.active = False

        return invoke


def _set_stream(handler: Any, stream: Any) -> None:
    if hasattr(handler, "setStream"):
        handler.setStream(stream)
