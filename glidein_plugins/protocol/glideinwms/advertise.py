"""Write values into glidein_config and their lines into condor_vars.lst together: every line
validated before either file is touched, each file written once under its lock, condor_vars.lst
put back (its lock still held) should glidein_config then fail to update."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from glidein_plugins.errors import ConfigError
from glidein_plugins.node import atomic
from glidein_plugins.protocol.glideinwms import condor_vars, glidein_config

CONDOR_VARS_KEY = "CONDOR_VARS_FILE"


def vars_file(values: glidein_config.GlideinConfig, work_dir: Path) -> Path:
    """The condor_vars file that glidein_config names (relative paths from ``work_dir``)."""
    target = values.get(CONDOR_VARS_KEY) or ""
    if not target.strip():
        raise ConfigError(values.where(CONDOR_VARS_KEY) or values.path.name,
                          f"{CONDOR_VARS_KEY} is not set")
    return Path(target) if os.path.isabs(target) else work_dir / target


def write(values: glidein_config.GlideinConfig, vars_path: Path,
          lines: Iterable[condor_vars.VarLine], changes: Mapping[str, str],
          wait: float | None = None) -> None:
    """Add ``lines`` to ``vars_path`` and ``changes`` to glidein_config (ValueError or
    ConfigError, with nothing written, for a bad line or a missing file).

    ``wait``: the seconds a lock held by another writer is waited for (a stale one is broken
    after a quarter of them); None: the lock's own patience (minutes)."""
    lines = list(lines)
    for name, value in changes.items():
        glidein_config.format_line(name, value)  # ValueError before anything is written
    if not changes and not lines:
        return
    # condor_vars.lst stays locked until glidein_config is written: putting it back after a
    # failure can never drop a line another writer added meanwhile
    with _lock(vars_path, wait) or glidein_config.Lock(vars_path):
        try:
            old_vars = vars_path.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as exc:
            where = values.where(CONDOR_VARS_KEY) or values.path.name
            raise ConfigError(where, f"{CONDOR_VARS_KEY} {vars_path}: {exc.strerror or exc}"
                              ) from None
        condor_vars.update_locked(vars_path, lines)
        try:
            glidein_config.update(values.path, changes, _lock(values.path, wait))
        except BaseException:
            if lines:
                atomic.write_text(vars_path, old_vars)
            raise


def _lock(path: Path, wait: float | None) -> glidein_config.Lock | None:
    if wait is None:
        return None
    defaults = glidein_config.Lock(path)
    return glidein_config.Lock(path, stale_after=min(defaults.stale_after, wait / 4),
                               give_up_after=min(defaults.give_up_after, wait))
