"""The one way this package runs an external command: an argv list (never a shell), a timeout,
the whole process group killed on expiry, output captured, every failure turned into a reason."""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_TIMEOUT = 30.0
OUTPUT_LIMIT = 1 << 20  # keep at most 1 MiB of each stream
DRAIN = 0.5  # seconds to keep reading after the command exits (a descendant may hold the pipes)
_POLL = 0.05  # how often to look whether the command has exited while its pipes stay open
_PIPE_CHUNK = 1 << 16
_REASON_TAIL = 300  # characters of the last output line quoted in a reason


@dataclass(frozen=True)
class CommandResult:
    """The outcome of one command. ``ok`` means it ran to completion with exit code 0."""

    argv: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    error: str = ""  # could not start: not found, not executable, ...

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.error

    @property
    def reason(self) -> str:
        """One line saying why the command failed ('' when it succeeded)."""
        name = self.argv[0] if self.argv else "?"
        if self.error:
            return f"{name}: {self.error}"
        if self.timed_out:
            return f"{name}: timed out after {self.seconds:.1f} s (process group killed)"
        if self.returncode != 0:
            tail = last_line(self.stderr) or last_line(self.stdout)
            how = (
                f"killed by signal {-self.returncode}"
                if self.returncode is not None and self.returncode < 0
                else f"exit code {self.returncode}"
            )
            return f"{name}: {how}" + (f": {tail[:_REASON_TAIL]}" if tail else "")
        return ""


def last_line(text: str) -> str:
    """The last non-blank line of ``text``, stripped."""
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return ""


def run(
    argv: Sequence[str],
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    stdin: str | None = None,
) -> CommandResult:
    """Run ``argv`` with ``timeout`` seconds; never raises for a failing or missing command.

    The command gets its own session (process group). On expiry the whole group is killed; when
    the command exits, whatever it left behind in its group is killed too, and a descendant that
    keeps the output pipes open (in the group or not) is not waited for beyond ``DRAIN`` s.
    stdout keeps its first ``OUTPUT_LIMIT`` bytes, stderr its last (where the error is).
    """
    argv = tuple(str(arg) for arg in argv)
    if not argv:
        return CommandResult(argv, None, "", "", 0.0, error="empty command")
    start = time.monotonic()
    try:
        with _LIVE_LOCK:  # a child of ours not in _LIVE is an orphan (see reap_orphans)
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,  # its own process group, so we can kill all of it
            )
            _LIVE.add(proc)
    except OSError as exc:
        return CommandResult(argv, None, "", "", 0.0, error=_start_error(exc, cwd))
    except ValueError as exc:  # a NUL byte in an argument or in the environment
        return CommandResult(argv, None, "", "", 0.0, error=str(exc))
    try:
        out, err, timed_out = _communicate(proc, stdin.encode() if stdin is not None else b"",
                                           start + max(timeout, 0.0))
    finally:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        _kill_group(proc)  # on expiry, and descendants left behind by a command that exited
        with _LIVE_LOCK:
            _LIVE.discard(proc)
        reap_orphans()  # descendants that left the group (setsid), when we are their reaper
    return CommandResult(
        argv,
        None if timed_out else proc.returncode,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        time.monotonic() - start,
        timed_out=timed_out,
    )


def _start_error(exc: OSError, cwd: str | None) -> str:
    what = {
        errno.ENOENT: "not found",
        errno.EACCES: "permission denied",
        errno.ENOEXEC: "not an executable (exec format error)",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    if cwd is not None and exc.filename == cwd:
        return f"working directory {cwd}: {what}"
    return what


def _communicate(proc: subprocess.Popen[bytes], data: bytes,
                 deadline: float) -> tuple[bytes, bytes, bool]:
    """Feed ``data``, collect output until both pipes close and the command exits, or until
    ``deadline`` (the group is then killed); returns (stdout, stderr, timed_out).

    Reading stops ``DRAIN`` s after the command exited or was killed, pipes open or not.
    """
    assert proc.stdout is not None and proc.stderr is not None
    out, err = bytearray(), bytearray()
    give_up: float | None = None  # set once the command has exited or been killed
    timed_out = False
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, out)
        selector.register(proc.stderr, selectors.EVENT_READ, err)
        if proc.stdin is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            selector.register(proc.stdin, selectors.EVENT_WRITE, None)
        while selector.get_map():
            now = time.monotonic()
            if give_up is None:
                if proc.poll() is not None:
                    give_up = now + DRAIN
                elif now >= deadline:
                    timed_out = True
                    _kill_group(proc)
                    give_up = now + DRAIN
            elif now >= give_up:
                break
            for key, _ in selector.select(min(give_up or deadline, now + _POLL) - now):
                if key.data is None:  # stdin
                    data = _feed(key.fd, data)
                    if not data:
                        selector.unregister(key.fileobj)
                        assert proc.stdin is not None
                        proc.stdin.close()
                    continue
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffer = key.data
                buffer += chunk
                if buffer is out:
                    del buffer[OUTPUT_LIMIT:]  # keep the head of stdout
                else:
                    del buffer[:-OUTPUT_LIMIT]  # keep the tail of stderr
    if give_up is None:  # both pipes closed: the command itself may still run
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            timed_out = True  # the caller kills the group
    return bytes(out), bytes(err), timed_out


def _feed(fd: int, data: bytes) -> bytes:
    """Write what the pipe takes now; returns the rest (b'' once done or the reader is gone)."""
    try:
        return data[os.write(fd, data[:_PIPE_CHUNK]):]
    except BlockingIOError:
        return data
    except OSError:  # BrokenPipeError: the command does not read its input
        return b""


# --- descendants that left the process group ----------------------------------------------------

PR_SET_CHILD_SUBREAPER = 36  # prctl(2), Linux >= 3.4
_ORPHAN_ROUNDS = 50  # kill-and-reap rounds (10 ms apart): a daemon's own children come next
_subreaper = False


def become_subreaper() -> bool:
    """Make this process the reaper of its descendants (``prctl(PR_SET_CHILD_SUBREAPER)``):
    a descendant of a command that left the command's process group (``setsid``, a daemon)
    is then re-parented to us rather than to init, and ``run`` kills it when the command ends.
    False, doing nothing else, where prctl is not available (not Linux, no libc, an old
    kernel): such a descendant then escapes, as it would without this."""
    global _subreaper  # noqa: PLW0603 - one flag for the process
    if _subreaper:
        return True
    try:
        import ctypes  # noqa: PLC0415 - setup and periodic only

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
        prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                          ctypes.c_ulong]
        _subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError, ImportError):
        _subreaper = False
    return _subreaper


def _children() -> list[int]:
    """The pids whose parent is this process and whose session is not ours (from /proc; []
    without it). Every command runs in a session of its own, which its descendants keep or
    leave for yet another (setsid): a child in our own session was started by someone else in
    this process (a plugin's own ``subprocess.run``, a test runner) and is never ours to kill."""
    me, session = os.getpid(), os.getsid(0)
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # state ppid pgrp session ...
        if len(fields) > 3 and fields[1] == str(me).encode() and \
                fields[3] != str(session).encode():
            found.append(int(name))
    return found


def reap_orphans() -> list[int]:
    """Kill and reap every child of ours that no running command owns: descendants of ended
    commands re-parented to us as their subreaper (their own children follow them, so this
    goes round until none is left, within about half a second). Returns the pids killed; nothing
    when we are not a subreaper."""
    if not _subreaper:
        return []
    killed: list[int] = []
    for _ in range(_ORPHAN_ROUNDS):
        with _LIVE_LOCK:
            owned = {proc.pid for proc in _LIVE}
            orphans = [pid for pid in _children() if pid not in owned]
            for pid in orphans:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        if not orphans:
            break
        killed += [pid for pid in orphans if pid not in killed]
        time.sleep(0.01)
        for pid in orphans:  # never blocking: one stuck in the kernel is left behind
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
    return killed


# Commands still running: if the process exits while a worker thread waits on one (a plugin
# that overran its budget), its group is killed at exit instead of being left behind.
_LIVE: set[subprocess.Popen[bytes]] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def kill_all() -> None:
    """Kill the process group of every command still running."""
    with _LIVE_LOCK:
        running = list(_LIVE)
    for proc in running:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the command's process group, and reap the command."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        with contextlib.suppress(subprocess.TimeoutExpired):  # a process in D state
            proc.wait(timeout=5)
