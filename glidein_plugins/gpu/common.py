"""What every GPU source shares: the node (where its files are, its environment, a bounded way
to run a command), how a source reports, and how executables are found.

Files under ``/proc``, ``/sys``, ``/dev``, ``/etc`` and ``/opt`` are read below ``Host.root``
(``/`` on a node; a fake tree in the tests), so no test needs root or real devices. Commands
run through ``Host.run`` (``Context.run``: an argv, never a shell, a timeout, the process group
killed on expiry).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Callable

from glidein_plugins.node import commands, paths
from glidein_plugins.spec.results import GpuDevice

Runner = Callable[..., commands.CommandResult]
READ_LIMIT = 1 << 20  # bytes read from one file at most
_PCI = re.compile(r"^(?:([0-9a-fA-F]+):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$")


@dataclass(frozen=True)
class Host:
    """The node as the GPU sources see it."""

    run_command: Runner
    environ: Mapping[str, str]
    root: str = "/"
    timeout: float = 20.0
    # runs the ``stat`` that looks for executables, whose misses are expected (exit 1): a
    # runner that does not report them as failed commands (default: ``run_command``)
    lookup_command: Runner | None = None

    def path(self, absolute: str) -> str:
        """``absolute`` (a path on the node) below ``root``."""
        return os.path.join(self.root, absolute.lstrip("/"))

    def run(self, argv: Sequence[str], timeout: float | None = None,
            env: Mapping[str, str] | None = None) -> commands.CommandResult:
        """Run ``argv`` with the node's environment (or ``env``) and ``timeout`` (default: the
        sources' timeout)."""
        return self.run_command(list(argv), timeout=self.timeout if timeout is None else timeout,
                                env=dict(self.environ if env is None else env))

    def lookup(self, argv: Sequence[str], timeout: float | None = None) -> commands.CommandResult:
        runner = self.lookup_command or self.run_command
        return runner(list(argv), timeout=self.timeout if timeout is None else timeout,
                      env=dict(self.environ))

    def read(self, absolute: str) -> str | None:
        """The text of a file on the node, None when it cannot be read."""
        try:
            with open(self.path(absolute), encoding="utf-8", errors="replace") as handle:
                return handle.read(READ_LIMIT)
        except OSError:
            return None

    def listdir(self, absolute: str) -> list[str] | None:
        """The sorted entries of a directory on the node, None when it cannot be listed."""
        try:
            return sorted(os.listdir(self.path(absolute)))
        except OSError:
            return None

    def exists(self, absolute: str) -> bool:
        return os.path.lexists(self.path(absolute))


@dataclass(frozen=True)
class Report:
    """What one source said.

    ``ran``: the source was available and consulted; ``ok``: its answer can be trusted (it may
    hold no device); ``status``: one line for the trace; ``extra``: facts beside the devices
    (driver and CUDA versions, counts); ``notes``: further ``(level, message)`` lines.
    """

    source: str
    devices: tuple[GpuDevice, ...] = ()
    ran: bool = False
    ok: bool = False
    status: str = ""
    level: str = "info"
    extra: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Enumerated:
    """A device and its place in the vendor's enumeration: ``index`` counts the physical GPUs
    in PCI order (nvidia-smi's index; a MIG instance has its parent's), ``parent`` is the
    physical GPU's UUID for a MIG instance."""

    device: GpuDevice
    index: int
    parent: str = ""


@dataclass(frozen=True)
class Tool:
    """An executable looked for: ``path`` where it is ('' if not found), ``why`` not."""

    name: str
    path: str = ""
    why: str = ""


def locate(candidates: Mapping[str, Sequence[str]], host: Host,
           why_missing: Mapping[str, str]) -> dict[str, Tool]:
    """The first executable file among each tool's candidate paths, all looked at with one
    bounded ``stat`` (a stale mount on PATH cannot hang the glidein).

    A tool with no candidates is reported with ``why_missing`` (disabled, say). When ``stat``
    itself could not tell, the first candidate is used: running it is bounded too.
    """
    every = [path for paths_ in candidates.values() for path in paths_]
    info = paths.inspect(every, host.timeout, host.lookup) if every else {}
    tools = {}
    for name, options in candidates.items():
        found = next((path for path in options if info[path].executable), "")
        if not found and options and all(info[path].kind == "unknown" for path in options):
            found = options[0]
        tools[name] = Tool(name, found, "" if found else why_missing.get(name, "not found"))
    return tools


def search_path(environ: Mapping[str, str]) -> list[str]:
    """The absolute directories of ``PATH`` (relative entries are ignored: the glidein's
    working directory is no place to pick up a system tool from)."""
    return [entry for entry in environ.get("PATH", "").split(":") if entry.startswith("/")]


def in_dirs(name: str, directories: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(f"{directory.rstrip('/')}/{name}" for directory in directories))


def missing_value(text: str) -> bool:
    """True for the placeholders tools print instead of a value: ``[N/A]``, ``N/A``,
    ``[Not Supported]``, ``[Insufficient Permissions]``, ``[Unknown Error]``, ''."""
    text = text.strip()
    return not text or text.upper() in ("N/A", "NA", "NONE") or (
        text.startswith("[") and text.endswith("]"))


def pci_bus_id(text: str) -> str:
    """A PCI address as ``dddd:bb:dd.f`` in lower case (nvidia-smi prints an 8-digit domain,
    HTCondor and /proc four digits); '' when ``text`` is not one."""
    match = _PCI.match(text.strip())
    if not match:
        return ""
    domain, bus, device, function = match.groups()
    return f"{int(domain or '0', 16):04x}:{int(bus, 16):02x}:{int(device, 16):02x}.{function}"


def uuid_key(uuid: str) -> str:
    """A device UUID without its ``GPU-``/``MIG-`` prefixes, in lower case, for comparing
    UUIDs written by different tools (HTCondor drops the ``GPU-`` prefix)."""
    key = uuid.strip().lower()
    for prefix in ("mig-", "gpu-"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key


def to_int(text: str) -> int:
    """The leading number of ``text`` (``81559``, ``81559 MiB``, ``40536.0``), 0 if none."""
    match = re.match(r"\s*(\d+)", text)
    return int(match.group(1)) if match else 0


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")
