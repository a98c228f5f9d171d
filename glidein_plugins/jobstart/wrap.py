"""The job wrapper's Python part: how one job starts, decided at job start.

``hooks/glidein_plugins_wrapper.sh`` (the USER_JOB_WRAPPER, or a fragment of GlideinWMS's
``condor_job_wrapper.sh``) runs ``python3 -I -S -c BOOT STATE WRAPPER PKG_DIR JOB ARGS...`` and
``eval``s what ``hook`` prints (the runtime is then ``exec``ed by the wrapper's own process, the
one HTCondor signals); ``glidein-plugins wrap -- JOB ARGS...`` decides the same way and
``execve``s the result itself.

The job's environment is the job's: HTCondor merges the job's ``environment`` over what the
glidein exports, and only ``_CONDOR_JOB_AD``, ``_CONDOR_MACHINE_AD`` and
``_CONDOR_WRAPPER_ERROR_FILE`` are set by the starter after it. So nothing here is decided by
it: the state, the interpreter and the package come from the wrapper's own location or the
machine ad (the shell part), the launch mode and whether the glidein is nested from the machine
ad and the state, which job-start plugins run from the state, their configuration from the
package dir; ``condor_chirp`` is looked for in the glidein's HTCondor and the system's, never on
the job's ``PATH`` (the shell runs this part with a fixed ``PATH`` and hands it the job's in
``GLIDEIN_PLUGINS_JOB_PATH``, for the job alone). For one job:

1. the setup state (the ``STATE`` argument, else the machine ad's ``GLIDEIN_PLUGINS_STATE``, an
   absolute path; none fails the job: never a job on the host for want of a decision) and its
   ``decision`` (``bare``: the job runs as it is), the job and machine ads (``_CONDOR_JOB_AD``,
   ``_CONDOR_MACHINE_AD``, read by ``job_ad``);
2. HTCondor starting the container itself, only in native mode (the setup decided ``native``
   and the machine ad says ``GLIDEIN_CONTAINER_LAUNCH=native``; never from argv's shape: in
   wrapper mode the job's argv is always the payload): HTCondor >= 8.8.2 hands a
   USER_JOB_WRAPPER the whole ``RUNTIME [global options] exec ... IMAGE JOB...`` line,
   ``RUNTIME`` being its ``SINGULARITY``, the runtime setup proved: never wrapped again, only
   corrected for what the probe found (``-C``/``--containall`` become what this node can do of
   them, ``--contain``/``--ipc`` dropped when nested, ``--pid`` when PID namespaces fail), the
   job's exported functions kept from the runtime; a job HTCondor started no container for
   runs as it is (PREFERRED) or gets one from the wrapper (REQUIRED);
3. the invocation: ``launch.build``, or, only when the state lists plugins implementing
   ``glidein_job_launch`` (``job_hooks``), those plugins and the built-in ``launch``, no
   other, configured by the package's ``factory_configs``, through the ``Runner`` (VO plugins
   are asked before the built-in ``launch``, and may refuse the job by raising; pluggy and YAML
   are imported then, never otherwise);
4. the initial check, outside: the image and the job's ``CVMFSReposList`` repositories
   readable, in a forked child killed after the ``check_timeout`` launch setting (a stale CVMFS
   mount hangs ``stat`` in the kernel);
5. a copy of the whole wrapper in the sandbox, ``.glidein_plugins/<its name>``, run again
   inside as ``/bin/sh .glidein_plugins/<name> JOB ARGS...`` (relative to ``--pwd /srv``)
   with ``GWMS_SINGULARITY_REEXEC=1`` (that relative ``$0``, which HTCondor never gives, is
   what the shell takes for the second pass, whatever the runtime does with the environment:
   the marker alone, on the host, is a first pass; the copy is never written through a link
   the job left in its sandbox; the mark ``.glidein_plugins/reexec``, which the second pass
   removes, makes a copy run again as a first pass fail the job, never start the runtime
   twice; the job's exported functions reach the job by ``/usr/bin/env`` in front of it,
   never the runtime's environment): the shell does the final setup there (``HOME=/srv``,
   ``TMP``/``TMPDIR``/``TEMP`` unset, then the scripts named in ``GLIDEIN_PLUGINS_INSIDE``,
   which a VO plugin may put in the invocation's environment), so the fragments before and
   after this one run inside as they do without containers.

A refusal (a forbidden image, no runtime, no image for the job's OS) or a failed check falls
back to the host only with PREFERRED, for a job that did not ask for an image; anything else
is a failure: one line in ``$_CONDOR_WRAPPER_ERROR_FILE`` (HTCondor makes it the hold reason;
several lines break it), the job attribute ``JobWrapperFailure`` set with ``condor_chirp`` when
there is one (bounded), the ``failure_delay`` launch setting (600 s by default: a broken node
must not eat the queue), and exit code ``REPORTED``.

Every job pays for this module: it imports only ``os`` and ``sys`` itself, and what it uses
(``launch``, ``setup_state``, ``job_ad``) stays off ``re``, ``dataclasses``, ``subprocess`` and
``typing``, whose imports cost more than starting the interpreter (``benchmarks/``). The
check forks rather than running ``stat`` through ``subprocess`` (``paths.inspect``) for the
same reason.
"""

from __future__ import annotations

import os
import sys

from glidein_plugins._where import INSTALL_DIR

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from glidein_plugins.jobstart.launch import Invocation, JobRequest, Refusal
    from glidein_plugins.jobstart.setup_state import SetupState
    from glidein_plugins.protocol.htcondor.job_ad import Ad

LAUNCH_VAR = "GLIDEIN_CONTAINER_LAUNCH"  # "native": HTCondor starts the containers
STATE_ATTRIBUTE = "GLIDEIN_PLUGINS_STATE"  # the machine ad's path of the setup state
STATUS_ATTRIBUTE = "GWMS_SINGULARITY_STATUS"  # the mode setup published: NEVER = no state
DELAY_VAR = "GLIDEIN_PLUGINS_FAILURE_DELAY"  # the delay when there is no state to say it
JOB_PATH_VAR = "GLIDEIN_PLUGINS_JOB_PATH"  # from the shell: '=' and the job's PATH, '' unset
SYSTEM_CHIRP = ("/usr/libexec/condor/condor_chirp", "/usr/bin/condor_chirp",
                "/bin/condor_chirp")
ERROR_FILE_VAR = "_CONDOR_WRAPPER_ERROR_FILE"
TRACE_VAR = "GLIDEIN_PLUGINS_TRACE"  # print the decisions too, not only the warnings
COPY_DIR = ".glidein_plugins"  # in the job sandbox: the wrapper's copy for the second pass
REEXEC_MARK = "reexec"  # in COPY_DIR: the container was started once for this job
ENV_BINARY = "/usr/bin/env"  # by its path: never a function of the job's
REPORTED = 86  # exit code: the failure was reported (error file, chirp, delay)
DEFAULT_DELAY = 600.0
DEFAULT_CHECK_TIMEOUT = 20.0
DEFAULT_PLUGIN_BUDGET = 60.0
CHIRP_TIMEOUT = 30.0
MESSAGE_LIMIT = 1000
# the second pass when no wrapper script is given (``glidein-plugins wrap`` used directly)
INNER_SCRIPT = 'HOME=/srv; export HOME; unset TMP TMPDIR TEMP; exec "$@"'

# apptainer/singularity ``exec`` options taking a value as the next argument
_VALUE_OPTIONS = frozenset((
    "-B", "--bind", "-H", "--home", "--pwd", "--cwd", "-S", "--scratch", "-W", "--workdir",
    "--env", "--env-file", "--mount", "-o", "--overlay", "--security", "--app", "--network",
    "--network-args", "--hostname", "--dns", "--fusemount", "--drop-caps", "--add-caps",
    "--no-mount", "--apply-cgroups", "--pem-path", "--docker-host", "--authfile",
    "--cpu-shares", "--cpus", "--cpuset-cpus", "--cpuset-mems", "--memory",
    "--memory-reservation", "--memory-swap", "--blkio-weight", "--blkio-weight-device",
    "--pids-limit",
))
_GLOBAL_VALUE_OPTIONS = frozenset(("-c", "--config"))  # before the subcommand
_CONTAIN_ALL = ("-C", "--containall")  # --contain --cleanenv --ipc --pid
_CLEAN_OPTIONS = frozenset(("-e", "--cleanenv", *_CONTAIN_ALL))


class WrapFailure(Exception):
    """The job must not start, because of ``message``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Plan:
    """What happens next: ``exec`` ``argv`` (the runtime: ``container``), or go on with
    ``argv`` (the wrapper's remaining fragments, then the job); ``env``: the whole environment
    for it (None: unchanged); ``warnings`` go to stderr, ``notes`` too when tracing."""

    __slots__ = ("argv", "container", "env", "notes", "warnings")

    def __init__(self, argv: Sequence[str], container: bool = False,
                 env: Mapping[str, str] | None = None, warnings: Iterable[str] = (),
                 notes: Iterable[str] = ()) -> None:
        self.argv = tuple(argv)
        self.container = container
        self.env = None if env is None else dict(env)
        self.warnings = list(warnings)
        self.notes = list(notes)

    def shell(self, environ: Mapping[str, str]) -> bytes:
        """The plan as POSIX shell commands, for ``eval`` by a shell whose environment is
        ``environ``: every value and argument one single-quoted word, every command a special
        built-in (``unset``, ``export``, ``exec``, ``set``: no function of the job's can stand
        in for them). A variable whose name the shell cannot take (``A.B``, an exported
        function's ``BASH_FUNC_name%%``) is removed by ``/usr/bin/env -u`` when the plan's
        environment leaves it out, else passed on unchanged."""
        lines = []
        argv = list(self.argv)
        if self.env is not None:
            lines += [b"unset " + name.encode() for name in environ
                      if name not in self.env and _is_name(name)]
            lines += [b"export " + name.encode() + b"=" + _quote(value)
                      for name, value in self.env.items()
                      if environ.get(name) != value and _is_name(name)]
            # what the shell cannot unset (BASH_FUNC_name%%: an exported function)
            odd = [name for name in environ if name not in self.env and not _is_name(name)]
            if odd:
                argv = [ENV_BINARY, *(word for name in odd for word in ("-u", name)), *argv]
        words = b" ".join(_quote(arg) for arg in argv)
        lines.append((b"exec " if self.container else b"set -- ") + words)
        return b"\n".join(lines) + b"\n"


def _quote(text: str) -> bytes:
    """``text`` as one single-quoted shell word (bytes: an argument need not be UTF-8)."""
    return b"'" + _bytes(text).replace(b"'", b"'\\''") + b"'"


def _bytes(text: str) -> bytes:
    """``text`` as the bytes it came from (argv and environment are bytes on POSIX). PyPy 3.9
    in the C locale decodes them as UTF-8 but has an ASCII filesystem encoding: UTF-8 then."""
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


def _is_name(name: str) -> bool:
    """A name the shell can export and unset."""
    return bool(name) and name.isascii() and not name[0].isdigit() and \
        name.replace("_", "a").isalnum()


# --- the plan ----------------------------------------------------------------------------------


def plan(job_argv: Sequence[str], environ: Mapping[str, str], state_path: str = "",
         wrapper: str = "", package_dir: str = "") -> Plan:
    """How to start ``job_argv`` (the wrapper's arguments), ``environ`` being its environment.

    ``state_path``: the setup state ('' for the machine ad's); ``wrapper``: the wrapper script
    run again inside the container ('' for ``INNER_SCRIPT``); ``package_dir``: where the factory
    configs are (for plugins). Raises WrapFailure when the job must not start.
    """
    machine_ad = _ad(environ, "_CONDOR_MACHINE_AD")
    state_path = state_path or _located(machine_ad)
    if not state_path and machine_ad.string(STATUS_ATTRIBUTE) == "NEVER":
        return Plan(job_argv)  # setup's published decision: no container, no state needed
    if not state_path:  # fail closed: never a job on the host for want of a decision
        raise WrapFailure(f"no setup decision: no setup state beside the wrapper and the "
                          f"machine ad names none ({STATE_ATTRIBUTE}); did setup run and "
                          "succeed on this glidein?")
    state = _load(state_path)
    if state.decision == "bare":
        return Plan(job_argv)  # setup decided on no container (NEVER, DISABLE)
    if state.decision == "native" and _launch_mode(machine_ad) == "native":
        exec_at = _htcondor_line(job_argv, state)
        if exec_at:
            return _correct_native(job_argv, exec_at, state, environ)
        if state.mode.outcome != "REQUIRED":
            return Plan(job_argv, notes=["HTCondor starts the containers on this glidein "
                                         "(native mode) and started none for this job: it "
                                         "runs as it is"])
        # REQUIRED: HTCondor starts every job's container; none here: the wrapper does
    if not state.wants_container:
        return Plan(job_argv)
    job_ad = _ad(environ, "_CONDOR_JOB_AD")
    inside = (("/bin/sh", os.path.join(COPY_DIR, os.path.basename(wrapper))) if wrapper else
              ("/bin/sh", "-c", INNER_SCRIPT, "glidein_plugins_wrapper"))
    from glidein_plugins.jobstart import launch  # noqa: PLC0415

    job = launch.JobRequest((*inside, *job_argv), job_ad, machine_ad, os.getcwd())
    built = (_build_with_plugins(state, job, environ, package_dir) if state.job_hooks else
             launch.build(state, job, environ))
    if isinstance(built, launch.Refusal):  # it says whether the job may run on the host
        return _without_container(built.reason, built.fallback_to_host, job_argv, built)
    check = PathCheck(_paths_to_check(state, job_ad, built.image),
                      _number(state.setting("check_timeout"), DEFAULT_CHECK_TIMEOUT))
    try:  # the wrapper is copied while the child looks at the paths
        if wrapper:
            copy_wrapper(wrapper, os.path.join(COPY_DIR, os.path.basename(wrapper)))
    finally:
        problems = check.problems()
    if problems:  # the container could not start: PREFERRED, for a job that named no image
        fallback = state.mode.outcome == "PREFERRED" and "SingularityImage" not in job_ad
        return _without_container("cannot start the container: " + "; ".join(problems),
                                  fallback, job_argv, built)
    if wrapper:
        mark_reexec(os.path.join(COPY_DIR, REEXEC_MARK))
    argv = with_functions(built.argv, len(inside), len(job_argv), environ)
    return Plan(argv, True, built.env, built.warnings, built.notes)


def with_functions(argv: Sequence[str], inside: int, job: int,
                   environ: Mapping[str, str]) -> tuple[str, ...]:
    """``argv`` (the runtime's, ending with the ``inside`` words of the second pass and the
    ``job`` words of the job) with the job's exported shell functions (``BASH_FUNC_name%%``:
    Lmod's ``module``...) handed to the job inside by ``/usr/bin/env`` in front of it: never
    through the runtime's environment (``launch`` leaves them out: the runtime runs on the
    host, and may be a shell script that would run them), nor through the second pass's shell
    (dash drops what is not a shell name). Not with a clean environment (``--cleanenv``)."""
    from glidein_plugins.jobstart.launch import exported_functions  # noqa: PLC0415

    functions = exported_functions(environ)
    at = len(argv) - job
    if not functions or at - inside < 0 or any(
            option in _CLEAN_OPTIONS for option in argv[:at - inside]):
        return tuple(argv)
    assigned = [f"{name}={environ[name]}" for name in functions]
    return (*argv[:at], ENV_BINARY, *assigned, *argv[at:])


def _located(machine_ad: Ad) -> str:
    """The machine ad's state path: absolute (a relative one would be in the job's sandbox, the
    cwd), or '' when the ad names none."""
    from glidein_plugins.jobstart import setup_state  # noqa: PLC0415 - see the module doc

    path = setup_state.locate(machine_ad)
    if path and not os.path.isabs(path):
        raise WrapFailure(f"the machine ad's {setup_state.ATTRIBUTE} {path!r} is not an "
                          "absolute path")
    return path


def _load(path: str) -> SetupState:
    from glidein_plugins.jobstart import setup_state  # noqa: PLC0415

    try:
        return setup_state.load(path)
    except ValueError as exc:
        raise WrapFailure(str(exc)) from None


def _ad(environ: Mapping[str, str], variable: str) -> Ad:
    """The ad in the file ``environ[variable]`` names (an empty ad without the variable)."""
    from glidein_plugins.protocol.htcondor import job_ad  # noqa: PLC0415

    path = environ.get(variable, "")
    if not path:
        return job_ad.Ad(where=variable)
    try:
        return job_ad.read(path)
    except ValueError as exc:
        raise WrapFailure(f"{variable}: {exc}") from None


def _launch_mode(machine_ad: Ad) -> str:
    """``native`` when setup made HTCondor start the containers: the machine ad says it, never
    the job's environment (a job setting it would run on the host)."""
    return (machine_ad.string(LAUNCH_VAR) or "").strip().lower()


def _without_container(reason: str, fallback: bool, job_argv: Sequence[str],
                       built: Invocation | Refusal) -> Plan:
    """The job on the host when ``fallback`` (saying why), else a failure."""
    if not fallback:
        _print(built.warnings)
        raise WrapFailure(reason)
    return Plan(job_argv, warnings=[*built.warnings, f"{reason}; PREFERRED: the job runs "
                                    "without a container"], notes=built.notes)


def _build_with_plugins(  # noqa: PLR0915
        state: SetupState, job: JobRequest, environ: Mapping[str, str],
        package_dir: str) -> Invocation | Refusal:
    """The invocation from the job-start plugins setup found (``state.job_hooks``) and the
    built-in ``launch``, no other: VO plugins are asked first (``Runner.call_first``, as
    ``Runner.invocation`` does, keeping which plugin answered: the built-in gives the runtime's
    whole environment, a VO plugin extra variables over the job's). The entry's configuration
    is the package's ``factory_configs`` (as the setup hook loads it); nothing comes from the
    job's environment (``GLIDEIN_PLUGINS_DISABLE``, ``GLIDEIN_PLUGINS_CONFIG_DIR``). A plugin
    that raises, or one setup found that is not there now, stops the job, PREFERRED or not."""
    if sys.flags.no_site:  # the hook runs Python with -S: pluggy and YAML are in site-packages
        import site  # noqa: PLC0415

        site.main()
    import dataclasses  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from glidein_plugins.builtin import BUILTINS  # noqa: PLC0415
    from glidein_plugins.builtin import launch as launch_plugin  # noqa: PLC0415
    from glidein_plugins.config import factory_config  # noqa: PLC0415
    from glidein_plugins.engine import manager  # noqa: PLC0415
    from glidein_plugins.engine.runner import Runner, Stop  # noqa: PLC0415
    from glidein_plugins.jobstart import launch  # noqa: PLC0415
    from glidein_plugins.protocol.glideinwms import glidein_config  # noqa: PLC0415
    from glidein_plugins.spec import results  # noqa: PLC0415
    from glidein_plugins.spec.context import Context, Deadline  # noqa: PLC0415

    config_dir = Path(package_dir or _package_dir(), "factory_configs")
    hooks = state.job_hooks
    try:
        entry = factory_config.load(sorted(config_dir.glob("*.yaml"))).entry(state.entry)
        values = glidein_config.read(Path(state.work_dir or ".") / "glidein_config")
    except ValueError as exc:
        raise WrapFailure(f"the job plugins ({', '.join(hooks)}) cannot be set up: "
                          f"{exc}") from None
    # only what setup found implementing the hook, and the built-in: every other plugin of the
    # entry (built-ins included) is blocked, so never even imported
    keep = {launch_plugin.PLUGIN, *hooks}
    others = (set(BUILTINS) | set(entry.enable) | set(entry.required)
              | set(manager.drop_ins(entry.directories))) - keep
    entry = dataclasses.replace(entry, disable=(*entry.disable, *sorted(others)),
                                required=tuple(name for name in entry.required if name in keep))
    budget = _number(state.setting("plugin_budget"), DEFAULT_PLUGIN_BUDGET)
    context = Context(entry, values, Path(state.work_dir or "."), Deadline(budget),
                      dict(environ))
    context.state(launch_plugin.PLUGIN)[launch_plugin.STATE_KEY] = state  # loaded once
    request = results.JobRequest(job.argv, job.job_ad, job.machine_ad, job.cwd)
    plugins = manager.build(entry, {})  # the job's GLIDEIN_PLUGINS_DISABLE is not read
    problems = {problem.name for problem in plugins.problems}
    gone = [name for name in hooks if name not in plugins.info and name not in problems]
    fatal = [str(problem) for problem in plugins.problems if problem.fatal]
    fatal += [f"{name}: the job-start plugin setup found is not enabled in "
              f"{config_dir}" for name in gone]
    if fatal:  # a plugin the entry requires, or setup ran, is missing: no job starts without it
        return launch.Refusal("; ".join(fatal))
    try:
        found = Runner(plugins, context).call_first(
            "glidein_job_launch", context=context, facts=state.facts(), job=request)
    except Stop as stop:  # a plugin refused the job, crashed or overran: it must not start
        return launch.Refusal(stop.failure.message)
    warnings = [str(problem) for problem in plugins.problems]
    warnings += [event.message for event in context.trace if event.level != "info"]
    notes = [event.message for event in context.trace if event.level == "info"]
    if found is None:  # the built-in refused (it says why), or none is enabled
        built = launch.build(state, job, environ)
        if isinstance(built, launch.Refusal):
            return built
        return launch.Refusal(f"no enabled plugin built a container invocation (plugins: "
                              f"{', '.join(hooks)}; is the built-in "
                              f"{launch_plugin.PLUGIN} disabled?)", notes=notes)
    plugin, invocation = found
    if plugin == launch_plugin.PLUGIN:  # launch.build's: the whole environment
        env = dict(invocation.env)
    else:  # a VO plugin's: extra variables over the job's environment, as launch.build does
        env = {name: value for name, value in environ.items()
               if not launch.runtime_variable(name) and not launch.is_function(name)}
        env["PATH"] = launch.CLEAN_PATH
        env.update(invocation.env)
    return launch.Invocation(invocation.argv, env, invocation.image, warnings, notes)


def _package_dir() -> str:
    """The directory holding this package."""
    return INSTALL_DIR


# --- HTCondor starting the container ------------------------------------------------------------


def _htcondor_line(argv: Sequence[str], state: SetupState) -> int:
    """The index of ``exec`` when ``argv`` is HTCondor's ``RUNTIME [global options] exec ...``
    line, else 0. Asked only in native mode (``plan``: the setup decided it and the machine ad
    says it): ``RUNTIME`` is then HTCondor's ``SINGULARITY``, the runtime setup proved. In
    wrapper mode the job's argv is always the payload, whatever it looks like."""
    runtime = state.runtime.path if state.runtime is not None else ""
    if not argv or not runtime or argv[0] != runtime:
        return 0
    index = 1
    while index < len(argv) and argv[index].startswith("-"):
        index += 2 if argv[index] in _GLOBAL_VALUE_OPTIONS else 1
    return index if index < len(argv) and argv[index] == "exec" else 0


def _correct_native(argv: Sequence[str], exec_at: int, state: SetupState,
                    environ: Mapping[str, str]) -> Plan:
    """HTCondor's ``apptainer exec`` line without the options this node cannot use: only the
    options before the image are looked at, the job's arguments never. Nested is what setup
    found (the job's ``APPTAINER_CONTAINER`` would drop ``--contain``). The job's exported
    shell functions are kept from the runtime, which runs on the host (``Plan.shell``)."""
    from glidein_plugins.jobstart.launch import CONTAIN_OPTIONS, PID_OPTIONS, is_function  # noqa: PLC0415

    runtime = state.runtime
    nested = runtime is not None and runtime.feature("nested")
    contain = not nested and (runtime is None or runtime.feature("contain", True))
    pid = contain and (runtime is None or runtime.feature("pid_namespaces", True))
    kept = list(argv[:exec_at + 1])
    dropped: list[str] = []
    index = exec_at + 1
    while index < len(argv) and argv[index].startswith("-") and argv[index] != "--":
        option = argv[index]
        if option in _VALUE_OPTIONS:
            kept += argv[index:index + 2]
            index += 2
            continue
        if option in _CONTAIN_ALL and not pid:
            # what this node can do of --contain --cleanenv --ipc --pid
            kept += ["--contain", "--ipc", "--cleanenv"] if contain else ["--cleanenv"]
            dropped.append(option)
        elif (option in CONTAIN_OPTIONS and not contain) or (option in PID_OPTIONS and not pid):
            dropped.append(option)
        else:
            kept.append(option)
        index += 1
    kept += argv[index:]
    warnings = []
    if dropped:
        reasons = runtime.reasons if runtime is not None else {}
        why = reasons.get("nested" if nested else "contain" if not contain
                          else "pid_namespaces", "") or ("nested" if nested else "")
        warnings.append(f"HTCondor's container command corrected: {' '.join(dropped)} "
                        f"dropped" + (f" ({why})" if why else ""))
    env = {name: value for name, value in environ.items() if not is_function(name)}
    return Plan(kept, env=env, warnings=warnings)


# --- the initial check -------------------------------------------------------------------------


def _paths_to_check(state: SetupState, job_ad: Ad, image: str) -> list[str]:
    """The image (a local path) and every repository of the job's ``CVMFSReposList``."""
    paths = [image] if image.startswith("/") else []
    root = state.cvmfs_root or "/cvmfs"
    for repo in (job_ad.string("CVMFSReposList") or "").replace(",", " ").split():
        if "/" in repo or repo in (".", ".."):
            raise WrapFailure(f"the job's CVMFSReposList names {repo!r}, not a repository")
        paths.append(os.path.join(root, repo, ""))  # the trailing / mounts an autofs repo
    return paths


class PathCheck:
    """Whether ``paths`` can be read, looked at in a forked child started at once, so that the
    wrapper goes on meanwhile; ``problems()`` collects the verdicts (see ``check_paths``)."""

    __slots__ = ("deadline", "paths", "pid", "read_end", "timeout")

    def __init__(self, paths: Sequence[str], timeout: float,
                 look: Callable[[str], str] | None = None) -> None:
        import time  # noqa: PLC0415

        self.paths, self.timeout = list(paths), timeout
        self.deadline = time.monotonic() + timeout
        self.pid = self.read_end = -1
        if not self.paths:
            return
        look = look or _looked_at
        self.read_end, write_end = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: each verdict ('' when readable) ends with a NUL
            try:
                os.close(self.read_end)
                for path in self.paths:
                    os.write(write_end, os.fsencode(look(path)) + b"\0")
            finally:
                os._exit(0)
        os.close(write_end)

    def problems(self) -> list[str]:
        """Why some paths cannot be read ([] when all can), at most ``timeout`` s after the
        start: the child is then killed, the path it was looking at is named as hanging, the
        ones after it as not checked."""
        if self.pid < 0:
            return []
        import select  # noqa: PLC0415
        import time  # noqa: PLC0415

        data = b""
        finished = False
        try:
            while not finished:
                left = self.deadline - time.monotonic()
                if left <= 0 or not select.select([self.read_end], [], [], left)[0]:
                    break
                chunk = os.read(self.read_end, 65536)
                data += chunk
                finished = not chunk
        finally:
            os.close(self.read_end)
            _reap(self.pid, finished)
            self.pid = -1
        verdicts = [os.fsdecode(verdict) for verdict in data.split(b"\0")[:-1]]
        problems = [verdict for verdict in verdicts if verdict]
        if len(verdicts) < len(self.paths):
            problems.append(f"{_shown(self.paths[len(verdicts)])} could not be read within "
                            f"{self.timeout:g} s (stale CVMFS or network mount?)")
            problems += [f"{_shown(path)} not checked"
                         for path in self.paths[len(verdicts) + 1:]]
        return problems


def check_paths(paths: Sequence[str], timeout: float,
                look: Callable[[str], str] | None = None) -> list[str]:
    """Why some of ``paths`` cannot be read ([] when all can), in at most ``timeout`` s.

    A forked child (not ``subprocess``: see the module doc) looks at each path in turn
    (``look``; by default ``stat``, then read access: '' when readable, else why not) and
    writes one verdict per path to a pipe; a ``stat`` hanging on a dead mount cannot hang the
    wrapper, only the child, which is killed.
    """
    return PathCheck(paths, timeout, look).problems()


def _looked_at(path: str) -> str:
    """'' when ``path`` can be read, else why not (run in the child)."""
    try:
        os.stat(path)
    except OSError as exc:
        return f"{_shown(path)}: {exc.strerror or exc}"
    if not os.access(path, os.R_OK):
        return f"{_shown(path)}: not readable"
    return ""


def _shown(path: str) -> str:
    return path.rstrip("/") or "/"


def _reap(pid: int, finished: bool) -> None:
    """Reap the child (``finished``: it closed the pipe, it is exiting), or kill it first; one
    stuck in the kernel on a dead mount is left behind rather than waited for."""
    try:
        if finished:
            os.waitpid(pid, 0)
            return
        import signal  # noqa: PLC0415
        import time  # noqa: PLC0415

        os.kill(pid, signal.SIGKILL)
        for _ in range(50):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
            time.sleep(0.01)
    except (ChildProcessError, ProcessLookupError):
        pass


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


# --- failure ---------------------------------------------------------------------------------


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` on one line: control characters and runs of blanks become one space."""
    line = " ".join("".join(char if char.isprintable() else " " for char in text).split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def report_failure(message: str, environ: Mapping[str, str], delay: float,
                   chirp: str = "") -> int:
    """Report a job that cannot start, the GlideinWMS way; ``REPORTED`` after ``delay`` s.

    One line on stderr and in ``$_CONDOR_WRAPPER_ERROR_FILE`` (a symbolic link there, left by
    the job, is replaced, never followed), and the job attribute ``JobWrapperFailure`` set to
    it with ``chirp`` (``condor_chirp``'s path, '' for none; bounded).
    """
    line = one_line(f"glidein_plugins wrapper: {message}")
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
            print(f"glidein_plugins wrapper: cannot write {error_file}: {exc.strerror or exc}",
                  file=sys.stderr)
    if chirp:
        from glidein_plugins.node import commands  # noqa: PLC0415 - failures only

        literal = '"' + line.replace("\\", "\\\\").replace('"', '\\"') + '"'
        result = commands.run([chirp, "set_job_attr", "JobWrapperFailure", literal],
                              timeout=CHIRP_TIMEOUT, env=environ)
        if not result.ok:
            print(f"glidein_plugins wrapper: {result.reason}", file=sys.stderr)
    if delay > 0:
        print(f"glidein_plugins wrapper: waiting {delay:g} s before exiting (so that a "
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
    default = _number(environ.get(DELAY_VAR), DEFAULT_DELAY)
    if not state_path:
        return default
    try:
        state = _load(state_path)
    except WrapFailure:
        return default
    return _number(state.setting("failure_delay"), default)


def _number(value: object, default: float) -> float:
    """``value`` as a number >= 0 (``default`` when it is not one)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return number if number >= 0 else default


def _print(lines: Iterable[str]) -> None:
    for line in lines:
        print(one_line(f"glidein_plugins wrapper: {line}"), file=sys.stderr)


# --- entry points ------------------------------------------------------------------------------


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
                path = _located(_ad(environ, "_CONDOR_MACHINE_AD"))
            except WrapFailure:
                path = ""
        return report_failure(message, environ, failure_delay(path, environ), find_chirp(path))
    _print(result.warnings)
    if environ.get(TRACE_VAR, "") not in ("", "0"):
        _print(result.notes)
    return result


def hook(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> int:
    """For ``hooks/glidein_plugins_wrapper.sh``: ``STATE WRAPPER PKG_DIR JOB ARGS...``;
    prints the plan for ``eval`` and returns 0, or returns ``REPORTED``.

    ``environ`` (``os.environ``) is the job's but for ``PATH``: the shell runs this part with a
    fixed one and passes the job's in ``GLIDEIN_PLUGINS_JOB_PATH``, which the job's view gets
    back (what this process runs is never looked up on the job's ``PATH``). Whatever else writes
    on stdout meanwhile (a plugin's ``print``) goes to stderr: the shell evaluates stdout.
    """
    environ = job_environment(os.environ if environ is None else environ)
    state_path, wrapper, package_dir, *job_argv = argv
    out = os.dup(1)
    os.dup2(2, 1)
    result = decide(job_argv, environ, state_path, wrapper, package_dir)
    sys.stdout.flush()
    if isinstance(result, int):
        return result
    os.write(out, result.shell(environ))
    return 0


def job_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with the job's ``PATH`` from ``GLIDEIN_PLUGINS_JOB_PATH`` (``=PATH``, or ''
    when the job has none) when the shell passed it."""
    found = dict(environ)
    job_path = found.pop(JOB_PATH_VAR, None)
    if job_path is not None:
        if job_path.startswith("="):
            found["PATH"] = job_path[1:]
        else:
            found.pop("PATH", None)
    return found


def execute(result: Plan, environ: Mapping[str, str]) -> None:
    """Replace this process with the plan's command (``execve``; never returns)."""
    env = {_bytes(name): _bytes(value) for name, value in
           (environ if result.env is None else result.env).items()}
    argv = [_bytes(arg) for arg in result.argv]
    if b"/" in argv[0]:
        os.execve(argv[0], argv, env)  # noqa: S606 - an argv, no shell
    os.execvpe(argv[0], argv, env)  # noqa: S606
