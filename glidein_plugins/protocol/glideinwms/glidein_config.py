"""glidein_config: the glidein's key/value file, read and written the GlideinWMS way.

One ``KEY value`` line each, the value being everything after the first space; ``#`` lines are
comments; the last line for a key wins. Writers take the ``glidein_config.lock`` symlink lock
(NFS-safe, shared with ``gconfig_add_safe``), write a temporary file, and rename it over the
original, so a reader never sees a half-written file and concurrent writers lose nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from glidein_plugins.errors import ConfigError
from glidein_plugins.node import atomic

MAX_LINE = 4096
# written by glidein_startup.sh before any script runs, and needed by the setup: the entry's
# configuration is chosen by the first, attributes are published through the second
REQUIRED_KEYS = ("GLIDEIN_Entry_Name", "CONDOR_VARS_FILE")
SHOWN_PROBLEMS = 3  # lines quoted in the summary of the malformed ones
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_ENCODING = ("utf-8", "surrogateescape")  # never fail on, nor alter, bytes we do not own


@dataclass(frozen=True)
class GlideinConfig:
    """A parsed glidein_config: effective values, where each came from, and lines we skipped."""

    path: Path
    values: Mapping[str, str]
    lines: Mapping[str, int]
    problems: tuple[str, ...] = ()

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)

    def where(self, key: str) -> str:
        """``glidein_config:LINE`` for a key that is set, else ''."""
        return f"{self.path.name}:{self.lines[key]}" if key in self.lines else ""


def read(path: Path) -> GlideinConfig:
    """Parse ``path``; raises ConfigError (with the path) when it is missing or unreadable."""
    return parse(_read_text(path), path)


def check(config: GlideinConfig, required: tuple[str, ...] = REQUIRED_KEYS) -> None:
    """Raise ConfigError (naming the file) unless ``config`` looks like what GlideinWMS
    writes: not empty, at least one ``KEY value`` line, and every ``required`` key."""
    if not config.values:
        what = (f"holds no 'KEY value' line ({len(config.problems)} malformed)"
                if config.problems else "is empty")
        raise ConfigError(str(config.path), f"glidein_config {what}: not one written by "
                                            "glidein_startup.sh")
    missing = [key for key in required if key not in config.values]
    if missing:
        raise ConfigError(str(config.path), f"glidein_config lacks {', '.join(missing)}, "
                          "which glidein_startup.sh always writes: not a glidein's own config?")


def summary(problems: tuple[str, ...], shown: int = SHOWN_PROBLEMS) -> str:
    """One line for every skipped or suspect line: how many, and the first ``shown``."""
    if not problems:
        return ""
    more = len(problems) - shown
    return (f"{len(problems)} line{'s' if len(problems) != 1 else ''} not understood: "
            + "; ".join(problems[:shown]) + (f"; and {more} more" if more > 0 else ""))


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), "glidein_config does not exist") from None
    except IsADirectoryError:
        raise ConfigError(str(path), "glidein_config is a directory") from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read glidein_config: {exc.strerror}") from None
    return data.decode(*_ENCODING)


def parse(text: str, path: Path = Path("glidein_config")) -> GlideinConfig:
    """Parse glidein_config text; malformed lines are skipped and listed in ``problems``."""
    values: dict[str, str] = {}
    lines: dict[str, int] = {}
    problems: list[str] = []
    name = path.name
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, value = line.partition(" ")
        if not sep or not _KEY.match(key):
            problems.append(
                f"{name}:{number}: skipped malformed line (expected 'KEY value'): {line[:80]!r}")
            continue
        if _size(line) > MAX_LINE:
            problems.append(f"{name}:{number}: {key}: line longer than {MAX_LINE} bytes (kept)")
        values[key] = value.rstrip("\r")
        lines[key] = number
    return GlideinConfig(path, values, lines, tuple(problems))


def format_line(key: str, value: str) -> str:
    """One ``KEY value`` line; raises ValueError for anything that would break the file."""
    if not _KEY.match(key):
        raise ValueError(f"{key!r} is not a glidein_config key")
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"{key}: value holds a newline or NUL, which would inject a line")
    line = f"{key} {value}"
    try:
        size = _size(line)
    except UnicodeEncodeError:
        raise ValueError(f"{key}: value holds a character no file can hold (a lone surrogate "
                         "that was not an undecodable byte)") from None
    if size >= MAX_LINE:
        raise ValueError(f"{key}: line longer than {MAX_LINE} bytes")
    return line


def _size(line: str) -> int:
    """The bytes ``line`` takes in the file (UnicodeEncodeError if it cannot be written)."""
    return len(line) if line.isascii() else len(line.encode(*_ENCODING))


@dataclass
class Lock:
    """The GlideinWMS lock on a file: the symlink ``FILE.lock``, the holder's pid in ``FILE.pid``.

    A lock whose holder (the pid in ``FILE.pid``, or none) has been seen dead for ``stale_after``
    seconds is broken, and one holding our own pid at once (a leftover: threads of one process
    serialise on an in-process lock first); waiting longer than ``give_up_after`` raises
    ConfigError. The holder's pid is written after the symlink, as ``lock_file`` does.
    """

    path: Path
    stale_after: float = 60.0
    give_up_after: float = 300.0
    poll: float = 0.01
    _suspect: tuple[str, float] | None = field(default=None, init=False, repr=False)
    _in_process: threading.Lock | None = field(default=None, init=False, repr=False)

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @property
    def pid_path(self) -> Path:
        return self.path.with_name(self.path.name + ".pid")

    def __enter__(self) -> Lock:
        in_process = _thread_lock(self.path)
        in_process.acquire()
        try:
            self._acquire()
        except BaseException:
            in_process.release()
            raise
        self._in_process = in_process
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._holder() == str(os.getpid()):  # not if it was broken and taken meanwhile
                self._remove()
        finally:
            if self._in_process is not None:
                self._in_process.release()
                self._in_process = None

    def _acquire(self) -> None:
        deadline = time.monotonic() + self.give_up_after
        self._suspect = None
        while True:
            try:
                os.symlink(self.path.name, self.lock_path)
            except FileExistsError:
                if self._stale():
                    self._remove()
                    continue
                if time.monotonic() > deadline:
                    raise ConfigError(
                        str(self.lock_path), f"lock still held after {self.give_up_after:.0f} s"
                    ) from None
                time.sleep(self.poll)
                continue
            except OSError as exc:
                raise ConfigError(str(self.lock_path), f"cannot lock: {exc.strerror}") from None
            try:
                atomic.write_text(self.pid_path, f"{os.getpid()}\n")
            except BaseException:
                self._remove()  # no lock without a holder left behind
                raise
            return

    def _holder(self) -> str:
        try:
            return self.pid_path.read_text(errors="replace").strip()
        except OSError:
            return ""

    def _stale(self) -> bool:
        """True once the same holder has been seen dead (or absent) for ``stale_after`` s."""
        holder = self._holder()
        if holder == str(os.getpid()):
            return True
        if holder.isdigit() and _alive(int(holder)):
            self._suspect = None
            return False
        now = time.monotonic()
        if self._suspect is None or self._suspect[0] != holder:
            self._suspect = (holder, now)  # a new suspect: its time starts now
        return now - self._suspect[1] >= self.stale_after

    def _remove(self) -> None:
        for path in (self.pid_path, self.lock_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(path: Path) -> threading.Lock:
    """The in-process lock for ``path``: threads do not even race for the symlink."""
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(os.path.realpath(path), threading.Lock())


def _alive(pid: int) -> bool:
    if pid <= 0:  # kill(0) would signal our own process group
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def update(path: Path, changes: Mapping[str, str], lock: Lock | None = None) -> list[str]:
    """Set every key of ``changes`` in one locked, atomic rewrite; returns the keys changed.

    Old lines of a changed key are dropped and the new line appended, as ``gconfig_add`` does;
    each change is first appended to ``glidein_config.history`` (as ``gconfig_add`` does).
    Nothing is written if any line is invalid (ValueError), and glidein_config is left intact
    if the history or the rewrite cannot be written (ConfigError).
    """
    new_lines = {key: format_line(key, value) for key, value in changes.items()}
    with lock or Lock(path):
        text = _read_text(path)
        current = parse(text, path)
        changed = [key for key, value in changes.items() if current.values.get(key) != value]
        if not changed:
            return []
        kept = [line for line in text.split("\n") if line.partition(" ")[0] not in changed]
        while kept and kept[-1] == "":
            kept.pop()
        history = path.with_name(path.name + ".history")
        try:
            with open(history, "a", encoding="utf-8", errors="surrogateescape") as log:
                log.write("".join(f"GLP{os.getpid()} {new_lines[key]}\n" for key in changed))
        except OSError as exc:
            raise ConfigError(str(history), f"cannot append: {exc.strerror or exc}") from None
        atomic.write_text(path, "\n".join([*kept, *(new_lines[key] for key in changed)]) + "\n")
    return changed
