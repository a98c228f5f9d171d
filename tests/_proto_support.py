"""Helpers for the protocol-module tests: Python children importing the package, process checks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

try:
    import psutil
except ImportError:  # PyPy: no psutil build, /proc is read instead
    psutil = None

ROOT = Path(__file__).resolve().parent.parent
CHILD_TIMEOUT = 60  # seconds: generous, for a loaded 2-core machine

# Run first in a child that must be refused what root may do: as root, become nobody (after the
# package and what it imports are loaded: /root may be closed to nobody). Paths must then be
# relative to the child's cwd, which only needs to be searchable by nobody.
DROP_ROOT = (
    "import glidein_plugins.protocol.glideinwms.glidein_config\n"
    "import glidein_plugins.protocol.glideinwms.condor_vars\n"
    "if os.geteuid() == 0:\n"
    "    os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def python_popen(code: str, *args: str, cwd: Path, **kwargs: Any) -> subprocess.Popen[str]:
    """``python -c CODE ARGS`` in ``cwd``; the code starts with ``import os, sys`` done."""
    return subprocess.Popen([sys.executable, "-c", "import os, sys\n" + code, *args], cwd=cwd,
                            env=child_env(), stdin=subprocess.DEVNULL, text=True, **kwargs)


def python_run(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run :func:`python_popen` to completion, output captured."""
    return subprocess.run([sys.executable, "-c", "import os, sys\n" + code, *args], cwd=cwd,
                          env=child_env(), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=CHILD_TIMEOUT)


def is_gone(pid: int) -> bool:
    """True if ``pid`` no longer runs (a zombie waiting for its reaper counts as gone)."""
    if psutil is None:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, within: float = 10.0) -> bool:
    """Whether ``pid`` is gone within ``within`` seconds (SIGKILL is delivered asynchronously)."""
    deadline = time.monotonic() + within
    while not is_gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
