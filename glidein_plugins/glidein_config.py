"""glidein_config: the glidein's key/value file, read and written the GlideinWMS way.

One ``KEY value`` line each, the value being everything after the first space; ``#`` lines are
comments; the last line for a key wins. Writers take the ``glidein_config.lock`` symlink lock
(NFS-safe, shared with ``gconfig_add_safe``), write a temporary file, and rename it over the
original, so a reader never sees a half-written file and concurrent writers lose nothing.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from glidein_plugins import atomic
from glidein_plugins.errors import ConfigError

MAX_LINE = 4096
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_ENCODING = ("utf-8", "surrogateescape")  # never fail on, nor alter, bytes we do not own


@dataclass(frozen=True)
class GlideinConfig:
    """A parsed glidein_config: effective values, where each came from, and lines we skipped."""

    path: Path
    values: Mapping[str, str]
    lines: Mapping[str, int]
    problems: Tuple[str, ...] = ()

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        return self.values.get(key, default)

    def where(self, key: str) -> str:
        """``glidein_config:LINE`` for a key that is set, else ''."""
        return f"{self.path.name}:{self.lines[key]}" if key in self.lines else ""


def read(path: Path) -> GlideinConfig:
    """Parse ``path``; raises ConfigError (with the path) when it is missing or unreadable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), "glidein_config does not exist") from None
    except IsADirectoryError:
        raise ConfigError(str(path), "glidein_config is a directory") from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read glidein_config: {exc.strerror}") from None
    return parse(data.decode(*_ENCODING), path)


def parse(text: str, path: Path = Path("glidein_config")) -> GlideinConfig:
    """Parse glidein_config text; malformed lines are skipped and listed in ``problems``."""
    values: Dict[str, str] = {}
    lines: Dict[str, int] = {}
    problems: List[str] = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, value = line.partition(" ")
        where = f"{path.name}:{number}"
        if not sep or not _KEY.match(key):
            problems.append(f"{where}: skipped malformed line (expected 'KEY value'): {line[:80]!r}")
            continue
        if len(line.encode(*_ENCODING)) > MAX_LINE:
            problems.append(f"{where}: {key}: line longer than {MAX_LINE} bytes (kept)")
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
    if len(line.encode(*_ENCODING)) >= MAX_LINE:
        raise ValueError(f"{key}: line longer than {MAX_LINE} bytes")
    return line


@dataclass
class Lock:
    """The GlideinWMS lock on a file: the symlink ``FILE.lock`` and the holder's pid in ``FILE.pid``.

    A lock whose holder has been seen dead for ``stale_after`` seconds is broken; waiting longer
    than ``give_up_after`` raises ConfigError. Threads of one process also serialise here.
    """

    path: Path
    stale_after: float = 60.0
    give_up_after: float = 300.0
    poll: float = 0.01
    _dead_since: Dict[str, float] = field(default_factory=dict)

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
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._remove()
        finally:
            _thread_lock(self.path).release()

    def _acquire(self) -> None:
        deadline = time.monotonic() + self.give_up_after
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
            atomic.write_text(self.pid_path, f"{os.getpid()}\n")
            return

    def _stale(self) -> bool:
        """True once the recorded holder has been seen dead (or absent) for ``stale_after`` s."""
        try:
            holder = self.pid_path.read_text().strip()
        except OSError:
            holder = ""
        if holder.isdigit() and _alive(int(holder)):
            self._dead_since.pop(holder, None)
            return False
        first_seen = self._dead_since.setdefault(holder, time.monotonic())
        return time.monotonic() - first_seen >= self.stale_after

    def _remove(self) -> None:
        for path in (self.pid_path, self.lock_path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


_THREAD_LOCKS: Dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(path: Path) -> threading.Lock:
    """The in-process lock for ``path``: threads do not even race for the symlink."""
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(os.path.abspath(path), threading.Lock())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def update(path: Path, changes: Mapping[str, str], lock: Optional[Lock] = None) -> List[str]:
    """Set every key of ``changes`` in one locked, atomic rewrite; returns the keys changed.

    Old lines of a changed key are dropped and the new line appended, as ``gconfig_add`` does;
    each change is also appended to ``glidein_config.history``. Nothing is written if any line
    is invalid (ValueError) and the file is left intact if writing fails (ConfigError).
    """
    new_lines = {key: format_line(key, value) for key, value in changes.items()}
    with lock or Lock(path):
        current = read(path)
        changed = [key for key, value in changes.items() if current.values.get(key) != value]
        if not changed:
            return []
        kept = [
            line
            for line in path.read_bytes().decode(*_ENCODING).split("\n")
            if line.partition(" ")[0] not in changed
        ]
        while kept and kept[-1] == "":
            kept.pop()
        text = "\n".join([*kept, *(new_lines[key] for key in changed)]) + "\n"
        atomic.write_text(path, text)
        history = "".join(f"GLP{os.getpid()} {new_lines[key]}\n" for key in changed)
        with open(path.with_name(path.name + ".history"), "a", encoding="utf-8",
                  errors="surrogateescape") as log:
            log.write(history)
    return changed
