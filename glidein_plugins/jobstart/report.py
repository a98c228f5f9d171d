"""A job that cannot start, reported the GlideinWMS way: one line in
``$_CONDOR_WRAPPER_ERROR_FILE`` (HTCondor makes it the hold reason; several lines break it),
the job attribute ``JobWrapperFailure`` set with ``condor_chirp`` when there is one (bounded),
the ``failure_delay`` launch setting (600 s by default: a broken node must not eat the queue),
and exit code ``REPORTED``.

On the per-job path: imports only ``os`` and ``sys`` (the rest on failures only).
"""

from __future__ import annotations

import os
import sys

from glidein_plugins.jobstart.inputs import load_state
from glidein_plugins.jobstart.plan import WrapFailure
from glidein_plugins.node.text import one_line

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

REPORTED = 86  # exit code: the failure was reported (error file, chirp, delay)
ERROR_FILE_VAR = "_CONDOR_WRAPPER_ERROR_FILE"
DELAY_VAR = "GLIDEIN_PLUGINS_FAILURE_DELAY"  # the delay when there is no state to say it
DEFAULT_DELAY = 600.0
SYSTEM_CHIRP = ("/usr/libexec/condor/condor_chirp", "/usr/bin/condor_chirp",
                "/bin/condor_chirp")
CHIRP_TIMEOUT = 30.0
MESSAGE_LIMIT = 1000  # HTCondor's hold reason
PREFIX = "glidein_plugins wrapper: "


def report_failure(message: str, environ: Mapping[str, str], delay: float,
                   chirp: str = "") -> int:
    """Report a job that cannot start, the GlideinWMS way; ``REPORTED`` after ``delay`` s.

    One line on stderr and in ``$_CONDOR_WRAPPER_ERROR_FILE`` (a symbolic link there, left by
    the job, is replaced, never followed), and the job attribute ``JobWrapperFailure`` set to
    it with ``chirp`` (``condor_chirp``'s path, '' for none; bounded).
    """
    line = one_line(PREFIX + message, MESSAGE_LIMIT)
    print(line, file=sys.stderr, flush=True)
    error_file = environ.get(ERROR_FILE_VAR, "")
    if error_file:
        try:
            if os.path.islink(error_file):
                os.unlink(error_file)
            descriptor = os.open(error_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                                 | os.O_NOFOLLOW, 0o644)
            with open(descriptor, "w", encoding="utf-8", errors="replace") as handle:
                handle.write(line + "\n")
        except OSError as exc:
            print(f"{PREFIX}cannot write {error_file}: {exc.strerror or exc}",
                  file=sys.stderr)
    if chirp:
        from glidein_plugins.node import commands  # noqa: PLC0415 - failures only

        literal = '"' + line.replace("\\", "\\\\").replace('"', '\\"') + '"'
        result = commands.run([chirp, "set_job_attr", "JobWrapperFailure", literal],
                              timeout=CHIRP_TIMEOUT, env=environ)
        if not result.ok:
            print(f"{PREFIX}{result.reason}", file=sys.stderr)
    if delay > 0:
        print(f"{PREFIX}waiting {delay:g} s before exiting (so that a "
              "broken node does not fail every job of the queue)", file=sys.stderr, flush=True)
        import time  # noqa: PLC0415

        time.sleep(delay)
    return REPORTED


def find_chirp(state_path: str) -> str:
    """``condor_chirp`` of the glidein's HTCondor (``CONDOR_DIR`` in the glidein_config beside
    the state at ``state_path``: ``WORK_DIR/.glidein_plugins/setup_state.json``), else the
    system's; '' when there is none. Never on the job's ``PATH``, nor where its ``CONDOR_DIR``
    says: the job would choose what runs on the host."""
    places = []
    if state_path:
        from pathlib import Path  # noqa: PLC0415 - failures only

        from glidein_plugins.protocol.glideinwms import glidein_config  # noqa: PLC0415

        config = Path(state_path).parent.parent / "glidein_config"
        try:
            condor_dir = glidein_config.read(config).get("CONDOR_DIR") or ""
        except (OSError, ValueError):
            condor_dir = ""
        if os.path.isabs(condor_dir):
            places += [os.path.join(condor_dir, "libexec", "condor_chirp"),
                       os.path.join(condor_dir, "usr", "libexec", "condor", "condor_chirp")]
    for place in (*places, *SYSTEM_CHIRP):
        if os.path.isfile(place) and os.access(place, os.X_OK):
            return place
    return ""


def failure_delay(state_path: str, environ: Mapping[str, str]) -> float:
    """The ``failure_delay`` launch setting of the state at ``state_path``; when the state
    cannot be read, ``$GLIDEIN_PLUGINS_FAILURE_DELAY``, else 600 s."""
    default = number(environ.get(DELAY_VAR), DEFAULT_DELAY)
    if not state_path:
        return default
    try:
        state = load_state(state_path)
    except WrapFailure:
        return default
    return number(state.setting("failure_delay"), default)


def number(value: object, default: float) -> float:
    """``value`` as a number >= 0 (``default`` when it is not one)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return number if number >= 0 else default


def print_lines(lines: Iterable[str]) -> None:
    for line in lines:
        print(one_line(PREFIX + line, MESSAGE_LIMIT), file=sys.stderr)

