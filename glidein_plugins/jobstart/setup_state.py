"""What setup decided, kept for job start: ``<work dir>/.glidein_plugins/setup_state.json``.

Setup (``session.run_setup``) writes the file atomically at the end of every successful setup,
whatever the mode, with its ``decision`` for job start: ``container`` (the wrapper starts each
job's container), ``native`` (HTCondor does, the wrapper corrects its line) or ``bare`` (no
container: NEVER, DISABLE); it publishes its absolute path as ``GLIDEIN_PLUGINS_STATE`` (a
machine attribute) for ``container`` and ``native``. Beside it, ``save`` writes
``decision``: shell assignments (``_gp_decision``, ``_gp_state``, ``_gp_python``: the Python
setup ran with, ``_gp_dir``: the directory holding this package), which the job wrapper (a
shell) sources without starting anything. A failed setup removes it (``forget``): the wrapper
then fails every job rather than guess. The job wrapper finds the state beside itself when
GlideinWMS concatenated it into ``condor_job_wrapper.sh`` in the glidein's work dir, else in
the machine ad: never in the job's environment, which the job controls. It reads it for every
job, so this module is on the per-job path: it imports nothing but ``os``/``sys``, and reads
the JSON with the C scanner of the standard ``json`` package (``_json``) without importing
``json`` itself (which brings ``re`` in); the records are plain read-only classes, not
dataclasses (whose import costs more than starting the interpreter). The records are in
``records``, the JSON reader in ``state_json``.

The file (``"version": 1``)::

    {"version": 1, "entry": "...", "work_dir": "...",
     "mode": {"outcome": "PREFERRED", "frontend": "...", "factory": "...", "reason": "..."},
     "has_singularity": true, "reason": "why not, when false",
     "runtime": {"path", "source", "version", "full_version", "flavour", "privilege",
                 "features": {name: bool}, "reasons": {name: str}} or null,
     "images": [{"platform", "uri", "source"}], "default_image": {...} or null,
     "binds": [{"source", "target", "options", "origin"}],
     "gpus": [GpuDevice fields], "libraries": [Library fields],
     "launch": {the launch plugin's settings, merged over its defaults},
     "tmp_dir": "...", "required_os": "...",
     "restrictions": {"names": ["cvmfs"], "cvmfs_root": "/cvmfs"},
     "container_env": "...", "container_env_clearlist": "...",
     "job_hooks": ["plugins implementing glidein_job_launch besides the built-in launch"],
     "decision": "container" | "native" | "bare"}
"""

from __future__ import annotations

import os

from glidein_plugins._where import INSTALL_DIR
from glidein_plugins.jobstart.records import (
    DECISIONS,
    BindState,
    ImageState,
    ModeState,
    RuntimeState,
    SetupState,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path
    from typing import Any

    from glidein_plugins.spec.results import Facts

__all__ = ["ATTRIBUTE", "DECISION", "RELATIVE_PATH", "SetupState", "forget", "from_facts", "load",
           "locate", "path_in", "save"]  # SetupState: what load returns

ATTRIBUTE = "GLIDEIN_PLUGINS_STATE"  # the machine attribute and job environment variable
RELATIVE_PATH = os.path.join(".glidein_plugins", "setup_state.json")  # under the work dir
DECISION = "decision"  # beside the state: the decision, state, Python and package for the shell


def from_facts(facts: Facts, *, entry: str, work_dir: str, launch: Mapping[str, Any],
               tmp_dir: str, required_os: str = "", restrictions: Iterable[str] = ("cvmfs",),
               cvmfs_root: str = "/cvmfs", container_env: str = "",
               container_env_clearlist: str = "", job_hooks: Iterable[str] = (),
               decision: str = "") -> SetupState:
    """The state for what a setup decided (``facts``) and the entry's job-start inputs."""
    from dataclasses import asdict  # noqa: PLC0415 - setup only

    if facts.mode is None:
        raise ValueError("no mode was negotiated")
    probe = facts.runtime
    runtime = None if probe is None else RuntimeState(
        probe.candidate.path, source=probe.candidate.source, version=probe.version,
        full_version=probe.full_version, flavour=probe.flavour, privilege=probe.privilege,
        features=probe.features, reasons=probe.reasons)
    mode = facts.mode
    return SetupState(
        entry=entry, work_dir=work_dir,
        mode=ModeState(mode.outcome.value, mode.frontend, mode.factory, mode.reason),
        has_singularity=facts.has_singularity, reason=facts.singularity_reason,
        runtime=runtime,
        images=[ImageState(image.platform, image.uri, image.source) for image in facts.images],
        default_image=None if facts.image is None else ImageState(
            facts.image.platform, facts.image.uri, facts.image.source),
        binds=[BindState(bind.source, bind.target, bind.options, bind.origin)
               for bind in facts.binds],
        gpus=[asdict(gpu) for gpu in facts.gpus],
        libraries=[asdict(library) for library in facts.libraries],
        launch=launch, tmp_dir=tmp_dir, required_os=required_os, restrictions=restrictions,
        cvmfs_root=cvmfs_root, container_env=container_env,
        container_env_clearlist=container_env_clearlist, job_hooks=job_hooks,
        decision=decision)


def path_in(work_dir: str | Path) -> str:
    """The state file's absolute path for the glidein work dir ``work_dir``."""
    return os.path.join(os.path.abspath(os.fspath(work_dir)), RELATIVE_PATH)


def save(path: str | Path, state: SetupState) -> None:
    """Write ``state`` to ``path`` atomically (its directory made if needed), and beside it
    ``DECISION`` for the job wrapper: the decision, ``path``, this Python and the directory
    this package was imported from, as single-quoted shell assignments (a path that is not
    absolute, or holds a newline, is left empty).

    Raises ConfigError (an InputError) naming the path when it cannot be written.
    """
    import json  # noqa: PLC0415
    import sys  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from glidein_plugins.errors import ConfigError  # noqa: PLC0415
    from glidein_plugins.node import atomic  # noqa: PLC0415

    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(str(target.parent), f"cannot make the directory: "
                                              f"{exc.strerror or exc}") from None
    text = json.dumps(state.to_json(), sort_keys=True, allow_nan=False)
    atomic.write_text(target, text + "\n")
    package_dir = INSTALL_DIR
    if state.decision not in DECISIONS:
        raise ValueError(f"setup decision {state.decision!r} is not one of {DECISIONS}")
    values = {"_gp_state": os.path.abspath(target), "_gp_python": sys.executable or "",
              "_gp_dir": package_dir}
    lines = [f"_gp_decision={state.decision}"]
    lines += [f"{name}='{_quoted(value)}'" for name, value in values.items()]
    atomic.write_text(target.parent / DECISION, "".join(f"{line}\n" for line in lines))


def _quoted(path: str) -> str:
    """``path`` for inside single quotes ('' unless absolute and on one line)."""
    if not os.path.isabs(path) or "\n" in path or "\0" in path:
        return ""
    return path.replace("'", "'\\''")


def forget(work_dir: str | Path) -> None:
    """Remove the decision of an earlier setup in ``work_dir`` (a failed setup leaves none:
    the wrapper then fails every job)."""
    try:  # noqa: SIM105 - contextlib is one more import on the per-job path
        os.unlink(os.path.join(os.path.dirname(path_in(work_dir)), DECISION))
    except FileNotFoundError:
        pass


def load(path: str | Path) -> SetupState:
    """The state saved at ``path``.

    Raises ``errors.InputError`` (a ValueError) naming the path and why: missing, unreadable,
    not JSON (with the line), another version, a key missing or of the wrong type.
    """
    from glidein_plugins.jobstart import state_json  # noqa: PLC0415 - reading only

    where = os.fspath(path)
    try:
        with open(where, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise state_json.state_error(
            where, f"cannot read the setup state: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise state_json.state_error(where, f"the setup state is not UTF-8 text: {exc.reason} "
                                            f"at byte {exc.start}") from None
    return state_json.read(state_json.parse_json(text, where), where)


def locate(machine_ad: Mapping[str, str] | None) -> str:
    """Where the state file is: the machine ad's ``GLIDEIN_PLUGINS_STATE`` (a string literal;
    ``job_ad.Ad`` or any mapping of attribute to expression text); '' when it does not say.
    Never the environment: at job start it is the job's."""
    if machine_ad is None:
        return ""
    string = getattr(machine_ad, "string", None)
    if string is not None:
        return str(string(ATTRIBUTE) or "")
    text = machine_ad.get(ATTRIBUTE, "").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"' and "\\" not in text:
        return text[1:-1]
    return ""
