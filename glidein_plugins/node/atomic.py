"""Write a file so that readers see the old or the new content, never a half-written one."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from glidein_plugins.errors import ConfigError


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path`` (which
    must be a regular file, or not exist: a device or a directory is never replaced)."""
    try:
        status = path.stat()
    except OSError:  # a new file (or one we cannot stat: mkstemp then says why)
        mode = 0o644
    else:
        if not stat.S_ISREG(status.st_mode):
            raise ConfigError(str(path), "cannot write: not a regular file")
        mode = status.st_mode & 0o777
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ConfigError(str(path), f"cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ConfigError(str(path), f"cannot write: {exc.strerror or exc}") from None
        raise

