"""Job start: how one job starts, decided for the job wrapper.

``hooks/glidein_plugins_wrapper.sh`` (the USER_JOB_WRAPPER, or a fragment of GlideinWMS's
``condor_job_wrapper.sh``) runs ``python3 -I -S -c BOOT STATE WRAPPER PKG_DIR JOB ARGS...`` and
``eval``s what ``hook`` prints (the runtime is then ``exec``ed by the wrapper's own process, the
one HTCondor signals); ``glidein-plugins wrap -- JOB ARGS...`` decides the same way and
``execve``s the result itself (``jobstart.reexec.execute``).

The job's environment is the job's: HTCondor merges the job's ``environment`` over what the
glidein exports, and only ``_CONDOR_JOB_AD``, ``_CONDOR_MACHINE_AD`` and
``_CONDOR_WRAPPER_ERROR_FILE`` are set by the starter after it. So nothing here is decided by
it: the state, the interpreter and the package come from the wrapper's own location or the
machine ad (the shell part), the launch mode and whether the glidein is nested from the machine
ad and the state, which job-start plugins run from the state, their configuration from the
package dir; ``condor_chirp`` is looked for in the glidein's HTCondor and the system's, never on
the job's ``PATH`` (the shell runs this part with a fixed ``PATH`` and hands it the job's in
``GLIDEIN_PLUGINS_JOB_PATH``, for the job alone: ``jobstart.inputs``). For one job:

1. the setup state (the ``STATE`` argument, else the machine ad's ``GLIDEIN_PLUGINS_STATE``, an
   absolute path; none fails the job: never a job on the host for want of a decision) and its
   ``decision`` (``bare``: the job runs as it is), the job and machine ads (``_CONDOR_JOB_AD``,
   ``_CONDOR_MACHINE_AD``, read by ``job_ad``);
2. HTCondor starting the container itself, only in native mode (the setup decided ``native``
   and the machine ad says ``GLIDEIN_CONTAINER_LAUNCH=native``; never from argv's shape: in
   wrapper mode the job's argv is always the payload): ``jobstart.native_line`` corrects
   HTCondor's ``RUNTIME [global options] exec ... IMAGE JOB...`` line for what the probe found
   (``-C``/``--containall`` become what this node can do of them, ``--contain``/``--ipc``
   dropped when nested, ``--pid`` when PID namespaces fail), the job's exported functions kept
   from the runtime; a job HTCondor started no container for runs as it is (PREFERRED) or gets
   one from the wrapper (REQUIRED);
3. the invocation: ``launch.build``, or, only when the state lists plugins implementing
   ``glidein_job_launch`` (``job_hooks``), those plugins and the built-in ``launch``, no
   other (``runs.job_plugins``; VO plugins are asked before the built-in ``launch``, and may
   refuse the job by raising; pluggy and YAML are imported then, never otherwise);
4. the initial check, outside (``jobstart.path_check``): the image and the job's
   ``CVMFSReposList`` repositories readable, in a forked child killed after the
   ``check_timeout`` launch setting (a stale CVMFS mount hangs ``stat`` in the kernel);
5. a copy of the whole wrapper in the sandbox, ``.glidein_plugins/<its name>``, run again
   inside as ``/bin/sh .glidein_plugins/<name> JOB ARGS...`` (relative to ``--pwd /srv``)
   with ``GWMS_SINGULARITY_REEXEC=1`` (``jobstart.reexec``: that relative ``$0``, which
   HTCondor never gives, is what the shell takes for the second pass, whatever the runtime
   does with the environment: the marker alone, on the host, is a first pass; the copy is
   never written through a link the job left in its sandbox; the mark
   ``.glidein_plugins/reexec``, which the second pass removes, makes a copy run again as a
   first pass fail the job, never start the runtime twice; the job's exported functions reach
   the job by ``/usr/bin/env`` in front of it, never the runtime's environment): the shell
   does the final setup there (``HOME=/srv``, ``TMP``/``TMPDIR``/``TEMP`` unset, then the
   scripts named in ``GLIDEIN_PLUGINS_INSIDE``, which a VO plugin may put in the invocation's
   environment), so the fragments before and after this one run inside as they do without
   containers.

A refusal (a forbidden image, no runtime, no image for the job's OS) or a failed check falls
back to the host only with PREFERRED, for a job that did not ask for an image; anything else
is a failure, reported by ``jobstart.report`` (one line for HTCondor's hold reason, the
``JobWrapperFailure`` job attribute, the ``failure_delay``, exit code ``REPORTED``).

Every job pays for this module: it imports only ``os`` and ``sys`` itself, and what it uses
(``jobstart``'s modules, ``job_ad``) stays off ``re``, ``dataclasses``, ``subprocess`` and
``typing``, whose imports cost more than starting the interpreter (``benchmarks/``).
"""

from __future__ import annotations

import os
import sys

from glidein_plugins._where import INSTALL_DIR
from glidein_plugins.jobstart import inputs, path_check, reexec, report
from glidein_plugins.jobstart.plan import Plan, WrapFailure

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from glidein_plugins.jobstart.launch import Invocation, Refusal

TRACE_VAR = "GLIDEIN_PLUGINS_TRACE"  # print the decisions too, not only the warnings


def plan(job_argv: Sequence[str], environ: Mapping[str, str], state_path: str = "",
         wrapper: str = "", package_dir: str = "") -> Plan:
    """How to start ``job_argv`` (the wrapper's arguments), ``environ`` being its environment.

    ``state_path``: the setup state ('' for the machine ad's); ``wrapper``: the wrapper script
    run again inside the container ('' for ``INNER_SCRIPT``); ``package_dir``: where the factory
    configs are (for plugins). Raises WrapFailure when the job must not start.
    """
    machine_ad = inputs.read_ad(environ, "_CONDOR_MACHINE_AD")
    state_path = state_path or inputs.located(machine_ad)
    if not state_path and machine_ad.string(inputs.STATUS_ATTRIBUTE) == "NEVER":
        return Plan(job_argv)  # setup's published decision: no container, no state needed
    if not state_path:  # fail closed: never a job on the host for want of a decision
        from glidein_plugins.jobstart.setup_state import ATTRIBUTE  # noqa: PLC0415

        raise WrapFailure(f"no setup decision: no setup state beside the wrapper and the "
                          f"machine ad names none ({ATTRIBUTE}); did setup run and "
                          "succeed on this glidein?")
    state = inputs.load_state(state_path)
    if state.decision == "bare":
        return Plan(job_argv)  # setup decided on no container (NEVER, DISABLE)
    if state.decision == "native" and inputs.launch_mode(machine_ad) == "native":
        from glidein_plugins.jobstart import native_line  # noqa: PLC0415

        exec_at = native_line.htcondor_line(job_argv, state)
        if exec_at:
            return native_line.correct_native(job_argv, exec_at, state, environ)
        if state.mode.outcome != "REQUIRED":
            return Plan(job_argv, notes=["HTCondor starts the containers on this glidein "
                                         "(native mode) and started none for this job: it "
                                         "runs as it is"])
        # REQUIRED: HTCondor starts every job's container; none here: the wrapper does
    if not state.wants_container:
        return Plan(job_argv)
    job_ad = inputs.read_ad(environ, "_CONDOR_JOB_AD")
    copy = os.path.join(reexec.COPY_DIR, os.path.basename(wrapper))
    inside = (("/bin/sh", copy) if wrapper else
              ("/bin/sh", "-c", reexec.INNER_SCRIPT, "glidein_plugins_wrapper"))
    from glidein_plugins.jobstart import launch  # noqa: PLC0415

    job = launch.JobRequest((*inside, *job_argv), job_ad, machine_ad, os.getcwd())
    if state.job_hooks:
        if sys.flags.no_site:  # the hook runs Python with -S: pluggy and YAML are in site-packages
            import site  # noqa: PLC0415

            site.main()
        from glidein_plugins.runs.job_plugins import build_with_plugins  # noqa: PLC0415

        built = build_with_plugins(state, job, environ, package_dir or INSTALL_DIR)
    else:
        built = launch.build(state, job, environ)
    if isinstance(built, launch.Refusal):  # it says whether the job may run on the host
        return _without_container(built.reason, built.fallback_to_host, job_argv, built)
    check = path_check.PathCheck(
        path_check.paths_to_check(state, job_ad, built.image),
        report.number(state.setting("check_timeout"), path_check.DEFAULT_TIMEOUT))
    try:  # the wrapper is copied while the child looks at the paths
        if wrapper:
            reexec.copy_wrapper(wrapper, copy)
    finally:
        problems = check.problems()
    if problems:  # the container could not start: PREFERRED, for a job that named no image
        fallback = state.mode.outcome == "PREFERRED" and "SingularityImage" not in job_ad
        return _without_container("cannot start the container: " + "; ".join(problems),
                                  fallback, job_argv, built)
    if wrapper:
        reexec.mark_reexec(os.path.join(reexec.COPY_DIR, reexec.REEXEC_MARK))
    argv = reexec.with_functions(built.argv, len(inside), len(job_argv), environ)
    return Plan(argv, True, built.env, built.warnings, built.notes)


def _without_container(reason: str, fallback: bool, job_argv: Sequence[str],
                       built: Invocation | Refusal) -> Plan:
    """The job on the host when ``fallback`` (saying why), else a failure."""
    if not fallback:
        report.print_lines(built.warnings)
        raise WrapFailure(reason)
    return Plan(job_argv, warnings=[*built.warnings, f"{reason}; PREFERRED: the job runs "
                                    "without a container"], notes=built.notes)


def decide(job_argv: Sequence[str], environ: Mapping[str, str], state_path: str = "",
           wrapper: str = "", package_dir: str = "") -> Plan | int:
    """``plan`` with its warnings printed (and notes, when tracing), or ``REPORTED`` once a
    failure is reported."""
    try:
        result = plan(job_argv, environ, state_path, wrapper, package_dir)
    except Exception as exc:  # a failure, or a bug: the job must not start either way
        if isinstance(exc, WrapFailure):
            message = exc.message
        else:
            import traceback  # noqa: PLC0415 - for a bug only

            traceback.print_exc()
            message = f"internal error: {type(exc).__name__}: {exc}"
        path = state_path
        if not path:
            try:
                path = inputs.located(inputs.read_ad(environ, "_CONDOR_MACHINE_AD"))
            except WrapFailure:
                path = ""
        return report.report_failure(message, environ, report.failure_delay(path, environ),
                                     report.find_chirp(path))
    report.print_lines(result.warnings)
    if environ.get(TRACE_VAR, "") not in ("", "0"):
        report.print_lines(result.notes)
    return result


def hook(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> int:
    """For ``hooks/glidein_plugins_wrapper.sh``: ``STATE WRAPPER PKG_DIR JOB ARGS...``;
    prints the plan for ``eval`` and returns 0, or returns ``REPORTED``.

    ``environ`` (``os.environ``) is the job's but for ``PATH``: the shell runs this part with a
    fixed one and passes the job's in ``GLIDEIN_PLUGINS_JOB_PATH``, which the job's view gets
    back (what this process runs is never looked up on the job's ``PATH``). Whatever else writes
    on stdout meanwhile (a plugin's ``print``) goes to stderr: the shell evaluates stdout.
    """
    environ = inputs.job_environment(os.environ if environ is None else environ)
    state_path, wrapper, package_dir, *job_argv = argv
    out = os.dup(1)
    os.dup2(2, 1)
    result = decide(job_argv, environ, state_path, wrapper, package_dir)
    sys.stdout.flush()
    if isinstance(result, int):
        return result
    os.write(out, result.shell(environ))
    return 0
