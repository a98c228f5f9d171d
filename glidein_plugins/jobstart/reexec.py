"""The container's second pass: the wrapper copied into the job sandbox and run again inside,
the mark that it was started once, the job's exported functions handed to the job inside, and
the final ``execve`` of the plan.

On the per-job path: imports only ``os``.
"""

from __future__ import annotations

import os

from glidein_plugins.jobstart.plan import ENV_BINARY, Plan, WrapFailure, as_bytes

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

COPY_DIR = ".glidein_plugins"  # in the job sandbox: the wrapper's copy for the second pass
REEXEC_MARK = "reexec"  # in COPY_DIR: the container was started once for this job
# the second pass when no wrapper script is given (``glidein-plugins wrap`` used directly)
INNER_SCRIPT = 'HOME=/srv; export HOME; unset TMP TMPDIR TEMP; exec "$@"'


def copy_wrapper(source: str, target: str) -> None:
    """Copy the wrapper script to ``target`` in the sandbox: executable, renamed into place.

    The sandbox is the job's (its input files): a symbolic link it left as the directory or the
    temporary file is removed, never followed, so the copy cannot land anywhere else."""
    try:
        with open(source, "rb") as handle:
            text = handle.read()
        directory = os.path.dirname(target) or "."
        if os.path.islink(directory):
            os.unlink(directory)
        try:  # noqa: SIM105 - contextlib is one more import for every job
            os.mkdir(directory)
        except FileExistsError:
            pass
        temporary = f"{target}.{os.getpid()}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            descriptor = os.open(temporary, flags, 0o755)
        except FileExistsError:  # left there by the job: a file, or a link to follow
            os.unlink(temporary)
            descriptor = os.open(temporary, flags, 0o755)
        try:
            os.write(descriptor, text)
        finally:
            os.close(descriptor)
        os.replace(temporary, target)
    except OSError as exc:
        raise WrapFailure(f"cannot copy the wrapper {source} into the job sandbox "
                          f"({target}): {exc.strerror or exc}") from None


def mark_reexec(mark: str) -> None:
    """Record in the sandbox that the container is started for this job (the wrapper's copy
    removes the mark inside): a first pass that finds it is the copy run again as a first pass
    (a runtime, or a site's wrapper around it, that changed its command line), and fails the
    job rather than start the runtime a second time: the wrapper never re-executes itself more
    than once. A mark the job left in its own sandbox fails only that job."""
    try:
        os.close(os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
    except FileExistsError:
        raise WrapFailure(f"the wrapper already started the container for this job ({mark} "
                          "is in the sandbox): its copy ran again as a first pass (does the "
                          "runtime, or a wrapper around it, change the command it runs?); "
                          "not starting the container a second time") from None
    except OSError as exc:
        raise WrapFailure(f"cannot write {mark} in the job sandbox: "
                          f"{exc.strerror or exc}") from None


def with_functions(argv: Sequence[str], inside: int, job: int,
                   environ: Mapping[str, str]) -> tuple[str, ...]:
    """``argv`` (the runtime's, ending with the ``inside`` words of the second pass and the
    ``job`` words of the job) with the job's exported shell functions (``BASH_FUNC_name%%``:
    Lmod's ``module``...) handed to the job inside by ``/usr/bin/env`` in front of it: never
    through the runtime's environment (``launch`` leaves them out: the runtime runs on the
    host, and may be a shell script that would run them), nor through the second pass's shell
    (dash drops what is not a shell name). Not with a clean environment (``--cleanenv``)."""
    from glidein_plugins.jobstart.launch import CLEANENV_OPTIONS  # noqa: PLC0415
    from glidein_plugins.jobstart.launch_env import exported_functions  # noqa: PLC0415

    functions = exported_functions(environ)
    at = len(argv) - job
    if not functions or at - inside < 0 or any(
            option in CLEANENV_OPTIONS for option in argv[:at - inside]):
        return tuple(argv)
    assigned = [f"{name}={environ[name]}" for name in functions]
    return (*argv[:at], ENV_BINARY, *assigned, *argv[at:])


def execute(result: Plan, environ: Mapping[str, str]) -> None:
    """Replace this process with the plan's command (``execve``; never returns)."""
    env = {as_bytes(name): as_bytes(value) for name, value in
           (environ if result.env is None else result.env).items()}
    argv = [as_bytes(arg) for arg in result.argv]
    if b"/" in argv[0]:
        os.execve(argv[0], argv, env)  # noqa: S606 - an argv, no shell
    os.execvpe(argv[0], argv, env)  # noqa: S606
