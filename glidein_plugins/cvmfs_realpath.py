"""Real paths of local images, CVMFS-aware, from one bounded child process.

A ``:latest`` tag in CVMFS is a symlink to an absolute ``/cvmfs/...`` path: when CVMFS is
mounted elsewhere (``CVMFS_MOUNT_DIR``) ``realpath`` fails on it, so links are followed one
component at a time, ``/cvmfs`` targets rebased on the CVMFS root (as GlideinWMS's
``cvmfs_resolve_path``). It runs in a child Python (``-I -S``) killed at the timeout, because a
stale mount hangs in the kernel. Light on purpose: the job wrapper imports it for every job.
"""

from __future__ import annotations

import sys

# argv[1]: the CVMFS root; argv[2:]: the paths. For each path, in order, one NUL-terminated
# record: "/real/path", or "!why" (missing, a symlink loop); flushed, so that a child killed on
# a stale path has still answered for the paths before it.
SCRIPT = r"""
import os, sys
root = sys.argv[1]
def real(path):
    done, todo, hops = "/", path.split("/")[::-1], 40
    while todo:
        name = todo.pop()
        if name in ("", "."):
            continue
        if name == "..":
            done = os.path.dirname(done)
            continue
        here = os.path.join(done, name)
        if not os.path.islink(here):
            done = here
            continue
        hops -= 1
        if hops < 0:
            return "!symlink loop"
        try:
            target = os.readlink(here)
        except OSError as exc:
            return "!" + (exc.strerror or str(exc))
        if root != "/cvmfs" and (target == "/cvmfs" or target.startswith("/cvmfs/")):
            target = root + target[len("/cvmfs"):]
        if target.startswith("/"):
            done = "/"
        todo += target.split("/")[::-1]
    return done if os.path.exists(done) else "!does not exist"
for path in sys.argv[2:]:
    sys.stdout.write(real(path) + "\0")
    sys.stdout.flush()
"""


def argv(paths: list[str], cvmfs_root: str) -> list[str]:
    """The child's command line."""
    return [sys.executable or "python3", "-I", "-S", "-c", SCRIPT, cvmfs_root, *paths]


def answers(paths: list[str], stdout: str) -> dict[str, tuple[str, str]]:
    """``path -> (real path, '')`` or ``(''``, why not)`` for every path the child answered."""
    records = stdout.split("\0")[:-1]  # the last one is unterminated, or empty
    return {path: ("", record[1:]) if record.startswith("!") else (record, "")
            for path, record in zip(paths, records)}
