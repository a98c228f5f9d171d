"""HTCondor starting the container itself (native mode): its ``RUNTIME [global options] exec
... IMAGE JOB...`` line, handed to the job wrapper (HTCondor >= 8.8.2), recognised and
corrected for what setup's probe found on this node; never wrapped again.

On the per-job path: imports nothing at load (``launch`` when correcting).
"""

from __future__ import annotations

from glidein_plugins.jobstart.plan import Plan

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from glidein_plugins.jobstart.records import SetupState

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


def htcondor_line(argv: Sequence[str], state: SetupState) -> int:
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


def correct_native(argv: Sequence[str], exec_at: int, state: SetupState,
                    environ: Mapping[str, str]) -> Plan:
    """HTCondor's ``apptainer exec`` line without the options this node cannot use: only the
    options before the image are looked at, the job's arguments never. Nested is what setup
    found (the job's ``APPTAINER_CONTAINER`` would drop ``--contain``). The job's exported
    shell functions are kept from the runtime, which runs on the host (``Plan.shell``)."""
    from glidein_plugins.jobstart.launch import CONTAIN_OPTIONS, PID_OPTIONS  # noqa: PLC0415
    from glidein_plugins.jobstart.launch_env import is_function  # noqa: PLC0415

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

