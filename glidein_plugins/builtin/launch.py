"""Built-in plugin ``launch``: the container command line for a job (``glidein_job_launch``).

It applies ``glidein_plugins.jobstart.launch.build`` (every rule is in that module's docstring),
``trylast``
so that a VO plugin implementing the hook is asked first. It needs the setup state: the one in
``context.state("launch")["setup_state"]`` when the caller put it there (the job wrapper does),
else the file the machine ad's ``GLIDEIN_PLUGINS_STATE`` names (never the environment: at job
start it is the job's). When the job cannot start in a
container it returns None, with the reason in the trace: the caller then asks ``launch.build``
for the refusal (its reason, and whether the job may run on the host).

The job wrapper calls ``launch.build`` directly (without pluggy) unless the state lists other
plugins implementing ``glidein_job_launch``.

Settings (``settings: {launch: {...}}``, declared in ``glidein_plugins.jobstart.settings``;
checked at setup, a wrong one is a ``Config`` failure
naming ``file:line`` and the key), kept in the setup state for job start:

========================  ========  ==========================================================
``pid_namespaces``        true      use ``--pid`` where the probe found it works
``extra_options``         []        more runtime options (strings), before ``--bind``
``check_timeout``         20        seconds for each check at job start (a job's image, CVMFS)
``failure_delay``         600       seconds the wrapper waits before failing a job (black hole)
``plugin_budget``         60        seconds the job plugins may take when the state lists them
``native``                false     HTCondor launches the container (no wrapper)
========================  ========  ==========================================================
"""

from __future__ import annotations

from collections.abc import Mapping

from glidein_plugins import hookimpl
from glidein_plugins.errors import FailureType, GlideinFailure
from glidein_plugins.jobstart import launch, setup_state
from glidein_plugins.jobstart import settings as launch_settings
from glidein_plugins.jobstart.settings import PLUGIN, STATE_KEY
from glidein_plugins.spec.context import Context
from glidein_plugins.spec.results import ContainerInvocation, JobRequest

SETTINGS = launch_settings.SETTINGS  # the declaration the engine checks the settings with


def state_for(context: Context, machine_ad: Mapping[str, str]) -> setup_state.SetupState:
    """The setup state: the caller's (``context.state("launch")``), else the file."""
    kept = context.state(PLUGIN).get(STATE_KEY)
    if isinstance(kept, setup_state.SetupState):
        return kept
    path = setup_state.locate(launch.as_ad(machine_ad))
    if not path:
        raise GlideinFailure(FailureType.CONFIG, f"no setup state: the machine ad has no "
                                                 f"{setup_state.ATTRIBUTE}")
    try:
        state = setup_state.load(path)
    except ValueError as exc:
        raise GlideinFailure(FailureType.CONFIG, str(exc)) from None
    context.state(PLUGIN)[STATE_KEY] = state
    return state


@hookimpl(trylast=True)
def glidein_job_launch(context: Context, job: JobRequest) -> ContainerInvocation | None:
    built = launch.build(state_for(context, job.machine_ad), job, context.environ)
    for warning in built.warnings:
        context.note(warning, "warning")
    for note in built.notes:
        context.note(note)
    if isinstance(built, launch.Refusal):
        context.note(f"no container: {built.reason}"
                     + (" (the job may run on the host)" if built.fallback_to_host else ""),
                     "warning")
        return None
    return ContainerInvocation(built.argv, built.env, built.image, "; ".join(built.notes))
