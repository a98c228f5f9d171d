"""What job start reads, never from what the job controls: the job's environment (its own
``PATH`` handed back), the setup state the machine ad names, the job and machine ads, and the
launch mode setup gave the machine ad.

On the per-job path: imports only ``os`` (``setup_state`` and ``job_ad`` when used).
"""

from __future__ import annotations

import os

from glidein_plugins.jobstart.plan import WrapFailure

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping

    from glidein_plugins.jobstart.records import SetupState
    from glidein_plugins.protocol.htcondor.job_ad import Ad

LAUNCH_VAR = "GLIDEIN_CONTAINER_LAUNCH"  # "native": HTCondor starts the containers
STATUS_ATTRIBUTE = "GWMS_SINGULARITY_STATUS"  # the mode setup published: NEVER = no state
JOB_PATH_VAR = "GLIDEIN_PLUGINS_JOB_PATH"  # from the shell: '=' and the job's PATH, '' unset


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


def located(machine_ad: Ad) -> str:
    """The machine ad's state path: absolute (a relative one would be in the job's sandbox, the
    cwd), or '' when the ad names none."""
    from glidein_plugins.jobstart import setup_state  # noqa: PLC0415 - only with a machine ad

    path = setup_state.locate(machine_ad)
    if path and not os.path.isabs(path):
        raise WrapFailure(f"the machine ad's {setup_state.ATTRIBUTE} {path!r} is not an "
                          "absolute path")
    return path


def load_state(path: str) -> SetupState:
    """The setup state at ``path``; WrapFailure saying why it cannot be read."""
    from glidein_plugins.jobstart import setup_state  # noqa: PLC0415

    try:
        return setup_state.load(path)
    except ValueError as exc:
        raise WrapFailure(str(exc)) from None


def read_ad(environ: Mapping[str, str], variable: str) -> Ad:
    """The ad in the file ``environ[variable]`` names (an empty ad without the variable)."""
    from glidein_plugins.protocol.htcondor import job_ad  # noqa: PLC0415

    path = environ.get(variable, "")
    if not path:
        return job_ad.Ad(where=variable)
    try:
        return job_ad.read(path)
    except ValueError as exc:
        raise WrapFailure(f"{variable}: {exc}") from None


def launch_mode(machine_ad: Ad) -> str:
    """``native`` when setup made HTCondor start the containers: the machine ad says it, never
    the job's environment (a job setting it would run on the host)."""
    return (machine_ad.string(LAUNCH_VAR) or "").strip().lower()
