"""The commands a glidein runs: ``setup``, ``periodic`` and ``wrap``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from glidein_plugins._where import INSTALL_DIR
from glidein_plugins.cli import report_text
from glidein_plugins.cli.args import config_files
from glidein_plugins.runs.session import run_setup


def cmd_setup(args: argparse.Namespace) -> int:
    """GlideinWMS custom-script mode: ``setup glidein_config ID``."""
    outcome = run_setup(Path(args.glidein_config), args.id, config_files(args))
    report_text.print_setup(outcome, sys.stdout)
    return outcome.report.exit_code


def cmd_periodic(args: argparse.Namespace) -> int:
    """GlideinWMS periodic script (startd cron): print ``NAME = value`` lines; always exit 0."""
    from glidein_plugins.runs import periodic  # noqa: PLC0415 - only this command needs it

    return periodic.run(Path(args.glidein_config), args.id, config_files(args), args.budget,
                        out=sys.stdout, log=sys.stderr)


def cmd_wrap(args: argparse.Namespace) -> int:
    """The job wrapper: start ``JOB ARGS...`` in its container (or as it is), as
    ``hooks/glidein_plugins_wrapper.sh`` does; ``--shell`` prints the plan for ``eval``."""
    from glidein_plugins.jobstart import reexec  # noqa: PLC0415 - only this command needs it
    from glidein_plugins.runs import job  # noqa: PLC0415 - only this command needs it

    command = list(args.job[1:] if args.job[:1] == ["--"] else args.job)
    if not command:
        print("glidein-plugins: error: wrap needs the job's command: wrap [OPTIONS] -- JOB "
              "[ARGS...]", file=sys.stderr)
        return 2
    package_dir = str(Path(INSTALL_DIR).resolve())
    result = job.decide(command, os.environ, args.state or "", args.wrapper or "", package_dir)
    if isinstance(result, int):
        return 1
    if args.shell:
        sys.stdout.flush()
        sys.stdout.buffer.write(result.shell(os.environ))
        return 0
    try:
        reexec.execute(result, os.environ)
    except OSError as exc:
        print(f"glidein-plugins: error: cannot run {result.argv[0]}: {exc.strerror or exc}",
              file=sys.stderr)
    return 127
