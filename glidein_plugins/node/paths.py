"""Look at many paths at once, bounded in time.

A stale CVMFS or network mount makes ``stat`` hang in the kernel; a hung thread would keep the
glidein from exiting, so every look goes through a ``stat`` child process (killed at the
timeout) rather than through ``os.stat`` in this process. Paths are grouped by the mount they
lie on (``/proc/self/mountinfo``, plus each repository under a CVMFS root named in
``split_under``), one ``stat`` per group, the groups concurrently: one dead mount leaves every
path on it ``unknown`` (with the reason) but does not hide the paths elsewhere.
"""

from __future__ import annotations

import contextvars
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Callable

from glidein_plugins.node import commands

Runner = Callable[..., commands.CommandResult]
MOUNTINFO = "/proc/self/mountinfo"
STALE_HINT = "stale CVMFS or network mount?"
_MAX_GROUPS = 8  # stat processes at once
_STAT_ERROR = re.compile(r"cannot stat[x]? (.+?): ([^:]+)$")
_MISSING = ("No such file or directory", "Not a directory")
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class PathInfo:
    """What ``stat -L`` said of one path: ``kind`` is file, directory, other, missing or unknown
    (``reason`` says why for missing and unknown)."""

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


def mount_points(mountinfo: str = MOUNTINFO) -> list[str]:
    """The mount points of this process's mount namespace ([] when unreadable)."""
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 4:  # the 5th field: the mount point, with \040-style escapes
            points.append(_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4]))
    return points


def _under(path: str, root: str) -> bool:
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/") or (root == "" and path.startswith("/"))


def mount_of(path: str, points: Sequence[str], split_under: Sequence[str] = ()) -> str:
    """The mount ``path`` lies on, lexically: the longest mount point holding it, or
    ``ROOT/NAME`` for a path under one of the ``split_under`` roots (each CVMFS repository is
    a mount of its own, autofs-mounted on first use); '' for a relative path."""
    if not path.startswith("/"):
        return ""
    for given in split_under:
        root = given.rstrip("/")
        if root and path.startswith(root + "/"):
            return root + "/" + path[len(root) + 1:].split("/", 1)[0]
    found = [point for point in points if _under(path, point)]
    return max(found, key=len) if found else "/"


def by_mount(paths: Iterable[str], points: Sequence[str],
             split_under: Sequence[str] = ()) -> dict[str, list[str]]:
    """``mount -> paths on it`` (see ``mount_of``), each parent dir's mount found once: 10,000
    binds share few parents (not for a path that is a mount point itself, nor one directly
    under a ``split_under`` root: each is a mount of its own)."""
    special, roots = set(points), {root.rstrip("/") for root in split_under}
    mounts: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    for path in paths:
        parent = path.rsplit("/", 1)[0]
        mount = mounts.get(parent)
        if mount is None or path in special or parent in roots:
            mount = mount_of(path, points, split_under)
            if path not in special and parent not in roots:
                mounts[parent] = mount
        groups.setdefault(mount, []).append(path)
    return groups


def inspect(paths: Iterable[str], timeout: float, run: Runner = commands.run,
            split_under: Sequence[str] = ()) -> dict[str, PathInfo]:
    """``path -> PathInfo`` for every path: one ``stat`` per mount, each bounded by ``timeout``.

    ``run`` is ``commands.run`` or a ``Context.run`` (which also caps the timeout by the
    setup's budget). ``split_under``: roots (the CVMFS root) whose every child is its own mount.
    """
    wanted = list(dict.fromkeys(path for path in paths if path))
    found = {path: PathInfo(path, "unknown", reason="holds a newline")
             for path in wanted if "\n" in path or "\0" in path}
    groups = by_mount([path for path in wanted if path not in found], mount_points(),
                      split_under)
    batches = list(groups.values())
    if len(batches) == 1:
        found.update(_stat(batches[0], timeout, run))
    elif batches:
        lock = threading.Lock()

        def work() -> None:  # takes batches until none is left
            while True:
                with lock:
                    if not batches:
                        return
                    batch = batches.pop()
                answer = _stat(batch, timeout, run)
                with lock:
                    found.update(answer)

        workers = [threading.Thread(target=contextvars.copy_context().run, args=(work,),
                                    daemon=True) for _ in range(min(len(batches), _MAX_GROUPS))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()  # each stat is bounded by ``timeout``
    return {path: found[path] for path in wanted}


def _stat(paths: list[str], timeout: float, run: Runner) -> dict[str, PathInfo]:
    """One ``stat -L`` over ``paths``; every path it does not describe gets why."""
    result = run(["stat", "-L", "-c", "%F|%a|%n", "--", *paths], timeout=timeout)
    if result.timed_out or result.error:
        why = f"could not be checked: {result.reason} ({STALE_HINT})"
        return {path: PathInfo(path, "unknown", reason=why) for path in paths}
    found: dict[str, PathInfo] = {}
    asked = set(paths)
    for line in result.stdout.splitlines():
        kind, _, rest = line.partition("|")
        mode, _, path = rest.partition("|")
        if path in found or path not in asked:
            continue
        kind = "directory" if kind == "directory" else "file" if "regular" in kind else "other"
        found[path] = PathInfo(path, kind, int(mode, 8) if mode.isdigit() else 0)
    errors = {}
    for line in result.stderr.splitlines():
        match = _STAT_ERROR.search(line.strip())
        if match:
            errors[match.group(1).strip("'\"‘’")] = match.group(2).strip()
    for path in paths:
        if path not in found:
            error = errors.get(path, "")
            if not error or error in _MISSING:
                found[path] = PathInfo(path, "missing", reason="does not exist")
            else:
                found[path] = PathInfo(path, "unknown", reason=f"cannot be checked: {error}")
    return found


def inspect_one(path: str, timeout: float, run: Runner = commands.run) -> PathInfo:
    return inspect([path], timeout, run)[path]


def describe(info: PathInfo) -> str:
    """Why ``info`` is not a program that can be run ('' when it is)."""
    if not info.exists:
        return f"{info.path} {info.reason or 'does not exist'}"
    if info.kind == "directory":
        return f"{info.path} is a directory, not a program"
    if info.kind == "file" and not info.executable:
        return f"{info.path} is not executable (mode {info.mode:o})"
    return ""
