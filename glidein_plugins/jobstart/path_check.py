"""The initial check at job start: the image and the job's CVMFS repositories readable,
looked at in a forked child killed after a timeout (a stale CVMFS mount hangs ``stat`` in the
kernel), while the wrapper goes on.

On the per-job path: it forks rather than run ``stat`` through ``subprocess``, whose import
costs more than starting the interpreter (``benchmarks/``).
"""

from __future__ import annotations

import os

from glidein_plugins.jobstart.plan import WrapFailure

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from glidein_plugins.jobstart.records import SetupState
    from glidein_plugins.protocol.htcondor.job_ad import Ad

DEFAULT_TIMEOUT = 20.0  # the launch setting check_timeout's default


def paths_to_check(state: SetupState, job_ad: Ad, image: str) -> list[str]:
    """The image (a local path) and every repository of the job's ``CVMFSReposList``."""
    paths = [image] if image.startswith("/") else []
    root = state.cvmfs_root or "/cvmfs"
    for repo in (job_ad.string("CVMFSReposList") or "").replace(",", " ").split():
        if "/" in repo or repo in (".", ".."):
            raise WrapFailure(f"the job's CVMFSReposList names {repo!r}, not a repository")
        paths.append(os.path.join(root, repo, ""))  # the trailing / mounts an autofs repo
    return paths


class PathCheck:
    """Whether ``paths`` can be read, looked at in a forked child started at once, so that the
    wrapper goes on meanwhile; ``problems()`` collects the verdicts (see ``check_paths``)."""

    __slots__ = ("deadline", "paths", "pid", "read_end", "timeout")

    def __init__(self, paths: Sequence[str], timeout: float,
                 look: Callable[[str], str] | None = None) -> None:
        import time  # noqa: PLC0415

        self.paths, self.timeout = list(paths), timeout
        self.deadline = time.monotonic() + timeout
        self.pid = self.read_end = -1
        if not self.paths:
            return
        look = look or _looked_at
        self.read_end, write_end = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: each verdict ('' when readable) ends with a NUL
            try:
                os.close(self.read_end)
                for path in self.paths:
                    os.write(write_end, os.fsencode(look(path)) + b"\0")
            finally:
                os._exit(0)
        os.close(write_end)

    def problems(self) -> list[str]:
        """Why some paths cannot be read ([] when all can), at most ``timeout`` s after the
        start: the child is then killed, the path it was looking at is named as hanging, the
        ones after it as not checked."""
        if self.pid < 0:
            return []
        import select  # noqa: PLC0415
        import time  # noqa: PLC0415

        data = b""
        finished = False
        try:
            while not finished:
                left = self.deadline - time.monotonic()
                if left <= 0 or not select.select([self.read_end], [], [], left)[0]:
                    break
                chunk = os.read(self.read_end, 65536)
                data += chunk
                finished = not chunk
        finally:
            os.close(self.read_end)
            _reap(self.pid, finished)
            self.pid = -1
        verdicts = [os.fsdecode(verdict) for verdict in data.split(b"\0")[:-1]]
        problems = [verdict for verdict in verdicts if verdict]
        if len(verdicts) < len(self.paths):
            problems.append(f"{_shown(self.paths[len(verdicts)])} could not be read within "
                            f"{self.timeout:g} s (stale CVMFS or network mount?)")
            problems += [f"{_shown(path)} not checked"
                         for path in self.paths[len(verdicts) + 1:]]
        return problems


def check_paths(paths: Sequence[str], timeout: float,
                look: Callable[[str], str] | None = None) -> list[str]:
    """Why some of ``paths`` cannot be read ([] when all can), in at most ``timeout`` s.

    A forked child (not ``subprocess``: see the module doc) looks at each path in turn
    (``look``; by default ``stat``, then read access: '' when readable, else why not) and
    writes one verdict per path to a pipe; a ``stat`` hanging on a dead mount cannot hang the
    wrapper, only the child, which is killed.
    """
    return PathCheck(paths, timeout, look).problems()


def _looked_at(path: str) -> str:
    """'' when ``path`` can be read, else why not (run in the child)."""
    try:
        os.stat(path)
    except OSError as exc:
        return f"{_shown(path)}: {exc.strerror or exc}"
    if not os.access(path, os.R_OK):
        return f"{_shown(path)}: not readable"
    return ""


def _shown(path: str) -> str:
    return path.rstrip("/") or "/"


def _reap(pid: int, finished: bool) -> None:
    """Reap the child (``finished``: it closed the pipe, it is exiting), or kill it first; one
    stuck in the kernel on a dead mount is left behind rather than waited for."""
    try:
        if finished:
            os.waitpid(pid, 0)
            return
        import signal  # noqa: PLC0415
        import time  # noqa: PLC0415

        os.kill(pid, signal.SIGKILL)
        for _ in range(50):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
            time.sleep(0.01)
    except (ChildProcessError, ProcessLookupError):
        pass

