"""The one way this package runs an external command: an argv list (never a shell), a timeout,
the whole process group killed on expiry, output captured, every failure turned into a reason."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple

DEFAULT_TIMEOUT = 30.0
_OUTPUT_LIMIT = 1 << 20  # keep at most 1 MiB of each stream


@dataclass(frozen=True)
class CommandResult:
    """The outcome of one command. ``ok`` means it ran to completion with exit code 0."""

    argv: Tuple[str, ...]
    returncode: Optional[int]
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
            return f"{name}: {how}" + (f": {tail}" if tail else "")
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
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    stdin: Optional[str] = None,
) -> CommandResult:
    """Run ``argv`` with ``timeout`` seconds; never raises for a failing or missing command."""
    argv = tuple(str(arg) for arg in argv)
    if not argv:
        return CommandResult(argv, None, "", "", 0.0, error="empty command")
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,  # its own process group, so we can kill all of it
        )
    except FileNotFoundError:
        return CommandResult(argv, None, "", "", 0.0, error="not found")
    except PermissionError:
        return CommandResult(argv, None, "", "", 0.0, error="permission denied")
    except OSError as exc:
        return CommandResult(argv, None, "", "", 0.0, error=exc.strerror or str(exc))
    timed_out = False
    try:
        out, err = proc.communicate(stdin.encode() if stdin is not None else None, max(timeout, 0))
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        try:  # a grandchild that left the group may still hold the pipes: do not wait on it
            out, err = proc.communicate(timeout=1.0)
        except subprocess.TimeoutExpired:
            out, err = b"", b""
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
            proc.wait()
    finally:
        _kill_group(proc)  # descendants left behind by a command that exited
    return CommandResult(
        argv,
        None if timed_out else proc.returncode,
        _text(out),
        _text(err),
        time.monotonic() - start,
        timed_out=timed_out,
    )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.returncode is None:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - uninterruptible sleep (D state)
            pass


def _text(data: Optional[bytes]) -> str:
    return (data or b"")[:_OUTPUT_LIMIT].decode("utf-8", "replace")
