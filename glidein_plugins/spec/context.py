"""What every hook receives: the entry, the configured values, a bounded command runner, and
the decision trace."""

from __future__ import annotations

import contextvars
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glidein_plugins.config.model import EntryConfig
from glidein_plugins.node import commands
from glidein_plugins.protocol.glideinwms.glidein_config import GlideinConfig
from glidein_plugins.spec.results import TraceEvent

# (phase, plugin) of the hook implementation running in this thread
CURRENT_CALL: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar(
    "glidein_plugins_call", default=("", "")
)
# where the implementation running in this thread records its trace events (the runner adds
# them to the trace when it takes the call's result, so the trace keeps the call order)
CALL_EVENTS: contextvars.ContextVar[list[TraceEvent] | None] = contextvars.ContextVar(
    "glidein_plugins_events", default=None
)


SLACK = 0.5  # seconds before the budget ends that a command is made to give up

class Deadline:
    """A time budget of ``seconds`` on the monotonic clock, from ``start`` (default: now)."""

    def __init__(self, seconds: float, start: float | None = None) -> None:
        self.seconds = seconds
        self.start = time.monotonic() if start is None else start
        self.end = self.start + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def share(self, fraction: float) -> Deadline:
        """A deadline ending when ``fraction`` of this budget (counted from its start) is spent."""
        return Deadline(self.seconds * fraction, self.start)


@dataclass
class Context:
    """The run's context, shared by every hook.

    Values are looked up in glidein_config first (Factory and Frontend attributes), then in the
    entry's factory config ``attributes``; ``where()`` tells which line a value came from.
    """

    entry: EntryConfig
    glidein_config: GlideinConfig
    work_dir: Path
    deadline: Deadline
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    trace: list[TraceEvent] = field(default_factory=list)
    _trace_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _state: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def entry_name(self) -> str:
        return self.entry.name

    def get(self, key: str, default: str | None = None) -> str | None:
        """The value of ``key``: glidein_config, else the entry's ``attributes``, else default."""
        value = self.glidein_config.get(key)
        if value is not None:
            return value
        setting = self.entry.attributes.get(key)
        return setting.value if setting is not None else default

    def value(self, key: str) -> str:
        """``key`` from glidein_config (or the entry's ``attributes``), else the environment,
        stripped; '' when unset."""
        found = self.get(key)
        return (found if found is not None else self.environ.get(key, "")).strip()

    @property
    def cvmfs_root(self) -> str:
        """Where CVMFS is mounted: ``CVMFS_MOUNT_DIR`` (see ``value``), default ``/cvmfs``."""
        return self.value("CVMFS_MOUNT_DIR").rstrip("/") or "/cvmfs"

    def where(self, key: str) -> str:
        """Where ``key``'s value was set (``glidein_config:12``, ``entry.yaml:7``) or ''."""
        if key in self.glidein_config.values:
            return self.glidein_config.where(key)
        setting = self.entry.attributes.get(key)
        return setting.where if setting is not None else ""

    def settings(self, plugin: str | None = None) -> dict[str, Any]:
        """The entry's settings for ``plugin`` (default: the plugin calling)."""
        return self.entry.plugin_settings(plugin or CURRENT_CALL.get()[1])

    def state(self, plugin: str | None = None) -> dict[str, Any]:
        """A dict private to ``plugin`` (default: the plugin calling) for this run: what one of
        its hooks learns for a later one (facts carry results, not a plugin's own notes)."""
        return self._state.setdefault(plugin or CURRENT_CALL.get()[1], {})

    def timeout_for(self, timeout: float) -> float:
        """``timeout`` capped so that a command ends ``SLACK`` s (at most a tenth of what is
        left) before the budget does: its process group is then killed by the command runner
        before the phase runner stops waiting for the plugin. 0 when nothing is left."""
        remaining = self.deadline.remaining()
        limit = min(timeout, remaining - min(SLACK, remaining / 10))
        return limit if limit > 0.05 else 0.0

    def run(self, argv: Sequence[str], timeout: float = commands.DEFAULT_TIMEOUT,
            env: Mapping[str, str] | None = None, cwd: str | None = None,
            quiet: bool = False) -> commands.CommandResult:
        """Run an external command within the setup's budget (see ``timeout_for``).

        Once the budget is spent the command is not started at all; the result says why. A
        failure adds a warning to the trace unless ``quiet`` (when failing is an answer, as
        ``stat`` exiting 1 for a missing path).
        """
        limit = self.timeout_for(timeout)
        if not limit:
            result = commands.CommandResult(tuple(str(arg) for arg in argv), None, "", "", 0.0,
                                            error="not run: setup time budget exhausted")
        else:
            result = commands.run(argv, timeout=limit, env=env, cwd=cwd)
        if not result.ok and not quiet:
            self.note(f"command failed: {result.reason}", level="warning")
        return result

    def quiet_run(self, argv: Sequence[str], timeout: float = commands.DEFAULT_TIMEOUT,
                  env: Mapping[str, str] | None = None,
                  cwd: str | None = None) -> commands.CommandResult:
        """``run`` without a trace line when the command fails."""
        return self.run(argv, timeout, env, cwd, quiet=True)

    def note(self, message: str, level: str = "info") -> None:
        """Add a line to the decision trace, attributed to the phase and plugin calling."""
        phase, plugin = CURRENT_CALL.get()
        self.record(TraceEvent(phase or "-", plugin or "-", message, level))

    def record(self, event: TraceEvent) -> None:
        events = CALL_EVENTS.get()
        if events is not None:
            events.append(event)
            return
        with self._trace_lock:
            self.trace.append(event)
