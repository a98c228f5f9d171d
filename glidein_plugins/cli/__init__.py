"""The ``glidein-plugins`` command (argparse, standard library only).

Exit status: 0 all is well, 1 a check failed (a config problem, a failed setup or dry run), 2 a
usage error. Output piped into a command that stops reading early (``run | head``) is no error.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from glidein_plugins.cli.parser import build_parser
from glidein_plugins.errors import Failure, FailureType, InputError
from glidein_plugins.node import commands
from glidein_plugins.protocol.glideinwms import result_xml

MISSING_DEPENDENCY = 3  # the exit code the setup hook reports as WN_Resource


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        # glidein_config may hold bytes that are not UTF-8: a log line must never crash on them
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    if args.command in ("setup", "periodic", "run"):
        # a probed binary's daemon (setsid) comes back to us and is killed when its command
        # ends (commands.reap_orphans); nothing changes where prctl is not available
        commands.become_subreaper()
    try:
        module, _, function = args.handler.rpartition(".")
        try:
            handler = getattr(importlib.import_module(f"glidein_plugins.cli.{module}"), function)
        except ImportError as exc:  # as the hook's launcher says it: a node without a dependency
            print(f"cannot import glidein_plugins or a dependency (pluggy, PyYAML): {exc}",
                  file=sys.stderr)
            return MISSING_DEPENDENCY
        code = int(handler(args))
        sys.stdout.flush()  # here, where a reader gone early is caught, not at exit
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head`, which has all it wanted: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # last resort: a clear one-line error, and the XML in setup mode
        failure = (Failure(FailureType.CONFIG, str(exc)) if isinstance(exc, InputError) else
                   Failure(FailureType.CORRUPTION, f"internal error: {type(exc).__name__}: {exc}"))
        print(f"glidein-plugins: error: {failure.message}", file=sys.stderr)
        if args.command == "setup":
            _emergency_xml(args.id, failure, sys.stderr)
        return 1


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` at once: flush the output and kill the commands still
    running (all the interpreter's teardown would do for us), then skip the teardown, which
    costs a glidein tens of milliseconds for a few hundred modules and does nothing useful."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    commands.kill_all()
    os._exit(code)


def _emergency_xml(script_id: str, failure: Failure, log: TextIO) -> None:
    try:
        result_xml.write(Path.cwd(), script_id, failure, {})
    except Exception as exc:
        print(f"glidein-plugins: cannot write {result_xml.FILE_NAME}: {exc}", file=log)


if __name__ == "__main__":
    exit_now(main())
