"""What a container runtime's answers mean (Apptainer, SingularityCE/PRO, Singularity): its
version and flavour, the privilege mode from ``/proc/self/uid_map``, ``FATAL`` lines, whether
we already run inside a container, the ``exec`` options GlideinWMS uses, the host's user
namespaces, and the attribute prefixes the runtime's details are published under. Used by the
probe (``container.probe``), the built-in ``singularity`` plugin and the text report."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from glidein_plugins.node import commands
from glidein_plugins.spec.context import Context

# every runtime detail is published under each of these prefixes (GlideinWMS's names)
PREFIXES = ("SINGULARITY_", "GWMS_SINGULARITY_", "CONTAINERSW_", "GWMS_CONTAINERSW_")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]")
_UID_MAP = re.compile(r"\s*(\d+)\s+(\d+)(?:\s+(\d+))?\s*$")
_VERSION_LINE = re.compile(r"^(?P<product>[A-Za-z][\w.+-]*)\s+version\s+(?P<version>\S+)",
                           re.IGNORECASE)
_BARE_VERSION = re.compile(r"v?\d+(\.\d+)*([-+.~_][\w.+~-]*)?")
_INIT_OF_CONTAINERS = ("sinit", "shim-init", "appinit", "starter", "starter-suid")


def clean(text: str) -> str:
    """Output without ANSI colour codes (Singularity 2.x wrote them even to pipes)."""
    return _ANSI.sub("", text)


def first_line(text: str) -> str:
    return next((line.strip() for line in clean(text).splitlines() if line.strip()), "")


def flavour_of(product: str) -> str:
    """``apptainer``, ``singularity-ce``, ``singularity-pro``, ``singularity`` or '' from the
    product name that starts ``--version``'s output."""
    name = product.lower()
    if "apptainer" in name:
        return "apptainer"
    if not name.startswith("singularity"):
        return ""
    if name.endswith(("-ce", "ce")):
        return "singularity-ce"
    if name.endswith("pro"):
        return "singularity-pro"
    return "singularity"


def parse_version(full_output: str, short_output: str = "") -> tuple[str, str, str]:
    """``(version, full version, flavour)`` from ``--version`` and ``version`` outputs.

    The version is ``version``'s output when it is a bare version number, else the number
    after ``... version`` in ``--version``'s (else its whole first line: Singularity 2.x);
    the flavour is '' when the full string does not name a known product.
    """
    full, short = first_line(full_output), first_line(short_output)
    match = _VERSION_LINE.match(full)
    parsed = match.group("version") if match else full
    version = short if _BARE_VERSION.fullmatch(short) else parsed
    return version, full or short, flavour_of(match.group("product")) if match else ""


def privilege_mode(uid_map_line: str) -> str:
    """privileged (setuid, no user namespace), fakeroot or unprivileged, from uid_map's line."""
    match = _UID_MAP.match(clean(uid_map_line))
    if match is None:
        raise ValueError(f"not a uid_map line: {uid_map_line!r}")
    inside, outside = int(match.group(1)), int(match.group(2))
    if inside == 0:
        return "privileged" if outside == 0 else "fakeroot"
    return "unprivileged"


def fatal_line(stderr: str, levels: tuple[str, ...] = ("FATAL",)) -> str:
    """The first line of a runtime's stderr at one of ``levels`` ('' if none)."""
    lines = [line.strip() for line in clean(stderr).splitlines()]
    return next((line for line in lines if line.startswith(levels)), "")


def nested(environ: Mapping[str, str], root: str = "/") -> str:
    """Why we think we already run inside a container ('' if we do not)."""
    for key in ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER"):
        if environ.get(key):
            return f"{key} is set ({environ[key]})"
    if os.path.isdir(os.path.join(root, ".singularity.d")):
        return "/.singularity.d exists"
    try:
        with open(os.path.join(root, "proc/1/comm"), encoding="utf-8", errors="replace") as comm:
            init = comm.read().strip()
    except OSError:
        return ""
    return f"PID 1 is {init}" if init in _INIT_OF_CONTAINERS else ""


def exec_options(work_dir: str, pid: bool, contain: bool = True) -> list[str]:
    """GlideinWMS's production ``exec`` options; ``contain`` False drops ``--ipc``,
    ``--contain`` and ``--pid`` (nested, or no devpts), ``pid`` False drops ``--pid``."""
    options = ["--home", f"{work_dir}:/srv", "--pwd", "/srv"]
    if contain:
        options += ["--ipc", "--contain"] + (["--pid"] if pid else [])
    return options


def runtime_env(context: Context) -> dict[str, str]:
    """The runtime's environment: its caches and temporary files under the glidein dir (when
    they can be made there; else the runtime's own defaults)."""
    scratch = context.work_dir / ".glidein_plugins" / "apptainer"
    env = dict(context.environ)
    try:
        for sub in ("cache", "tmp"):
            (scratch / sub).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        context.note(f"runtime cache and temporary dirs left as they are: {exc}", "warning")
        return env
    for prefix in ("APPTAINER", "SINGULARITY"):
        env[f"{prefix}_CACHEDIR"] = str(scratch / "cache")
        env[f"{prefix}_TMPDIR"] = str(scratch / "tmp")
    return env


def judge(result: commands.CommandResult, expect_uid_map: bool) -> str:
    """Why a container test failed ('' when it passed)."""
    fatal = fatal_line(result.stderr)
    if not result.ok:
        if result.error or result.timed_out or (result.returncode or 0) < 0:
            return result.reason
        tail = (fatal_line(result.stderr, ("FATAL", "ERROR")) or
                commands.last_line(result.stderr) or commands.last_line(result.stdout))
        return f"exit code {result.returncode}" + (f": {clean(tail)}" if tail else "")
    if fatal:
        return f"exit 0 but stderr says {fatal}"
    if expect_uid_map:
        first = clean(result.stdout).strip().splitlines()[:1]
        if not first or not _UID_MAP.match(first[0]):
            shown = repr(first[0][:60]) if first else "nothing"
            return f"exit 0 but printed {shown} instead of /proc/self/uid_map"
    return ""


def user_namespaces(context: Context, timeout: float = 10.0) -> tuple[str, str]:
    """``(enabled|disabled|unavailable|error, reason)`` for unprivileged user namespaces."""
    try:
        with open("/proc/sys/user/max_user_namespaces", encoding="ascii") as limit:
            maximum = int(limit.read().strip() or "0")
    except FileNotFoundError:
        return "unavailable", "/proc/sys/user/max_user_namespaces does not exist"
    except (OSError, ValueError) as exc:
        return "error", f"cannot read max_user_namespaces: {exc}"
    if maximum <= 0:
        return "disabled", "max_user_namespaces is 0"
    result = context.run(["unshare", "-U", "true"], timeout=timeout)
    if result.ok:
        return "enabled", ""
    if result.error == "not found":
        return "error", "unshare is not installed"
    return "disabled", f"unshare -U failed: {result.reason}"
