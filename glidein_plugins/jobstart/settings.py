"""The ``launch`` settings (``settings: {launch: {...}}``): checked at setup, kept in the setup
state for job start, read there by the built-in ``launch`` plugin and ``jobstart.native``."""

from __future__ import annotations

from typing import Any

from glidein_plugins.config.model import EntryConfig
from glidein_plugins.config.options import Option, Options
from glidein_plugins.errors import FailureType, GlideinFailure
from glidein_plugins.spec import checks

PLUGIN = "launch"  # the built-in plugin, and the settings' key
SETTINGS = Options(
    Option("pid_namespaces", True, checks.boolean,
           "use --pid where the probe found PID namespaces work"),
    Option("extra_options", [], checks.runtime_options,
           "more runtime options (strings starting with '-'), before --bind"),
    Option("check_timeout", 20.0, checks.seconds,
           "seconds for each check at job start (the job's own image, CVMFS)"),
    Option("failure_delay", 600.0, checks.seconds_or_zero,
           "seconds the wrapper waits before failing a job (no black hole)"),
    Option("plugin_budget", 60.0, checks.seconds,
           "seconds the job plugins may take, when the state lists some"),
    Option("native", False, checks.boolean, "HTCondor starts the container (no wrapper)"),
)
STATE_KEY = "setup_state"  # context.state(PLUGIN)[STATE_KEY]: the loaded SetupState


def settings(entry: EntryConfig) -> dict[str, Any]:
    """The entry's ``launch`` settings over the defaults.

    Raises GlideinFailure (``Config``) naming the file, line and key of a wrong one.
    """
    values = entry.settings.get(PLUGIN, {})
    problems = SETTINGS.problems(PLUGIN, values)
    if problems:
        raise GlideinFailure(FailureType.CONFIG, str(problems[0]))
    return SETTINGS.resolve(values)
