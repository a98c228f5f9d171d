"""Look at many paths at once, bounded in time.

A stale CVMFS or network mount makes ``stat`` hang in the kernel; a hung thread would keep the
glidein from exiting, so every look goes through one ``stat`` child process (killed at the
timeout) rather than through ``os.stat`` in this process.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Callable

from glidein_plugins import commands

Runner = Callable[..., commands.CommandResult]


@dataclass(frozen=True)
class PathInfo:
    """What ``stat -L`` said of one path: ``kind`` is file, directory, other, missing or unknown."""

    path: str
    kind: str
    mode: int = 0
    reason: str = ""

    @property
    def exists(self) -> bool:
        return self.kind in ("file", "directory", "other")

    @property
    def executable(self) -> bool:
        return self.kind == "file" and bool(self.mode & 0o111)


def inspect(paths: Iterable[str], timeout: float,
            run: Runner = commands.run) -> dict[str, PathInfo]:
    """``path -> PathInfo`` for every path, from one ``stat`` process bounded by ``timeout``."""
    wanted = list(dict.fromkeys(paths))
    if not wanted:
        return {}
    result = run(["stat", "-L", "-c", "%F|%a|%n", "--", *wanted], timeout=timeout)
    if result.timed_out or result.error:
        why = f"could not be checked: {result.reason} (stale CVMFS or network mount?)"
        return {path: PathInfo(path, "unknown", reason=why) for path in wanted}
    found: dict[str, PathInfo] = {}
    for line in result.stdout.splitlines():
        kind, _, rest = line.partition("|")
        mode, _, path = rest.partition("|")
        if path in found or path not in wanted:
            continue
        kind = "directory" if kind == "directory" else "file" if "regular" in kind else "other"
        found[path] = PathInfo(path, kind, int(mode, 8) if mode.isdigit() else 0)
    return {path: found.get(path) or PathInfo(path, "missing", reason="does not exist")
            for path in wanted}


def inspect_one(path: str, timeout: float, run: Runner = commands.run) -> PathInfo:
    return inspect([path], timeout, run)[path]
