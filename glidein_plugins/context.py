"""What every hook receives: the entry, the configured values, a bounded command runner, and
the decision trace."""

from __future__ import annotations

import contextvars
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from glidein_plugins import commands
from glidein_plugins.factory_config import EntryConfig
from glidein_plugins.glidein_config import GlideinConfig
from glidein_plugins.results import TraceEvent

# (phase, plugin) of the hook implementation running in this thread
CURRENT_CALL: contextvars.ContextVar[Tuple[str, str]] = contextvars.ContextVar(
    "glidein_plugins_call", default=("", "")
)


class Deadline:
    """A point in time after which work must stop."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0


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
    trace: List[TraceEvent] = field(default_factory=list)
    _trace_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def entry_name(self) -> str:
        return self.entry.name

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """The value of ``key``: glidein_config, else the entry's YAML ``attributes``, else default."""
        value = self.glidein_config.get(key)
        if value is not None:
            return value
        setting = self.entry.attributes.get(key)
        return setting.value if setting is not None else default

    def where(self, key: str) -> str:
        """Where ``key``'s value was set (``glidein_config:12``, ``entry.yaml:7``) or ''."""
        if key in self.glidein_config.values:
            return self.glidein_config.where(key)
        setting = self.entry.attributes.get(key)
        return setting.where if setting is not None else ""

    def settings(self, plugin: Optional[str] = None) -> Dict[str, Any]:
        """The entry's settings for ``plugin`` (default: the plugin calling)."""
        return self.entry.plugin_settings(plugin or CURRENT_CALL.get()[1])

    def run(self, argv: Sequence[str], timeout: float = commands.DEFAULT_TIMEOUT,
            env: Optional[Mapping[str, str]] = None,
            cwd: Optional[str] = None) -> commands.CommandResult:
        """Run an external command, its timeout capped by the setup's remaining budget."""
        result = commands.run(argv, timeout=min(timeout, self.deadline.remaining()), env=env,
                              cwd=cwd)
        if not result.ok:
            self.note(f"command failed: {result.reason}", level="warning")
        return result

    def note(self, message: str, level: str = "info") -> None:
        """Add a line to the decision trace, attributed to the phase and plugin calling."""
        phase, plugin = CURRENT_CALL.get()
        self.record(TraceEvent(phase or "-", plugin or "-", message, level))

    def record(self, event: TraceEvent) -> None:
        with self._trace_lock:
            self.trace.append(event)
