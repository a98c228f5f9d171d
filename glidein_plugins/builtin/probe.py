"""Built-in plugin ``probe``: prove a runtime candidate really runs containers.

Every check is an external command with its own timeout (capped by the setup's budget), and the
independent ones run concurrently: the version (``--version``), the functional test
(``cat /proc/self/uid_map`` in the test image with GlideinWMS's production options: the exit
code AND the output must be right, and ``FATAL:`` on stderr fails it even with exit 0), a bind
onto a directory missing in the image (can it do underlay/overlay?), a SIF image when the
``sif_image`` setting names one, and unprivileged user namespaces on the host. If the test fails
with ``--pid`` it is retried without (nodes inside Docker/Kubernetes). Already inside a
container (nested), ``--contain``, ``--ipc`` and ``--pid`` are not used. Results are cached in
the glidein directory for ``cache_ttl`` seconds, so periodic re-checks are cheap.
"""

from __future__ import annotations

import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from glidein_plugins import atomic, commands, hookimpl
from glidein_plugins.context import Context
from glidein_plugins.results import Facts, RuntimeCandidate, RuntimeProbe

SETTINGS: dict[str, Any] = {
    "timeout": 60.0, "version_timeout": 10.0, "test_image": "", "sif_image": "",
    "cache_ttl": 3600.0,
}
MISSING_TARGET = "/glidein_plugins_missing_target"
CACHE = Path(".glidein_plugins") / "probe_cache.json"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_UID_MAP = re.compile(r"\s*(\d+)\s+(\d+)\s+(\d+)\s*$")
_VERSION_PREFIX = re.compile(
    r"^(apptainer|singularity-ce|singularity-pro|singularity)\s+version\s+", re.IGNORECASE)
_INIT_OF_CONTAINERS = ("sinit", "shim-init", "appinit", "starter", "starter-suid")


def clean(text: str) -> str:
    """Output without ANSI colour codes."""
    return _ANSI.sub("", text)


def parse_version(output: str) -> tuple[str, str, str]:
    """``(version, full version, flavour)`` from ``--version`` output; flavour '' if unknown."""
    full = next((line.strip() for line in clean(output).splitlines() if line.strip()), "")
    match = _VERSION_PREFIX.match(full)
    if match:
        return full[match.end():].strip(), full, match.group(1).lower()
    return full, full, ""


def privilege_mode(uid_map_line: str) -> str:
    """privileged (setuid, no user namespace), fakeroot or unprivileged, from uid_map's line."""
    match = _UID_MAP.match(uid_map_line)
    if match is None:
        raise ValueError(f"not a uid_map line: {uid_map_line!r}")
    inside, outside = int(match.group(1)), int(match.group(2))
    if inside == 0:
        return "privileged" if outside == 0 else "fakeroot"
    return "unprivileged"


def fatal_line(stderr: str) -> str:
    return next((line.strip() for line in clean(stderr).splitlines() if "FATAL" in line), "")


def nested(environ: dict[str, str], root: str = "/") -> str:
    """Why we think we already run inside a container ('' if we do not)."""
    for key in ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER"):
        if environ.get(key):
            return f"{key} is set"
    if os.path.isdir(os.path.join(root, ".singularity.d")):
        return "/.singularity.d exists"
    try:
        with open(os.path.join(root, "proc/1/comm"), encoding="utf-8", errors="replace") as comm:
            init = comm.read().strip()
    except OSError:
        return ""
    return f"PID 1 is {init}" if init in _INIT_OF_CONTAINERS else ""


def exec_options(work_dir: str, pid: bool, is_nested: bool) -> list[str]:
    """GlideinWMS's production ``exec`` options, adapted to nesting and PID namespaces."""
    options = ["--home", f"{work_dir}:/srv", "--pwd", "/srv"]
    if not is_nested:
        options += ["--ipc", "--contain"] + (["--pid"] if pid else [])
    return options


def runtime_env(context: Context) -> dict[str, str]:
    """The runtime's environment: its caches and temporary files under the glidein dir."""
    scratch = context.work_dir / ".glidein_plugins" / "apptainer"
    env = dict(context.environ)
    for prefix in ("APPTAINER", "SINGULARITY"):
        env[f"{prefix}_CACHEDIR"] = str(scratch / "cache")
        env[f"{prefix}_TMPDIR"] = str(scratch / "tmp")
    for sub in ("cache", "tmp"):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    return env


def judge(result: commands.CommandResult, expect_uid_map: bool) -> str:
    """Why a container test failed ('' when it passed)."""
    if not result.ok:
        return fatal_line(result.stderr) or result.reason
    fatal = fatal_line(result.stderr)
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


class _Prober:
    """The checks of one candidate."""

    def __init__(self, context: Context, candidate: RuntimeCandidate, image: str,
                 settings: dict[str, Any]) -> None:
        self.context = context
        self.candidate = candidate
        self.image = image
        self.settings = settings
        self.work = str(context.work_dir)
        self.env = runtime_env(context)
        self.nested = nested(dict(context.environ))

    def exec(self, pid: bool, extra: list[str], image: str,
             command: list[str]) -> commands.CommandResult:
        argv = [self.candidate.path, "exec", *exec_options(self.work, pid, bool(self.nested)),
                *extra, image, *command]
        return self.context.run(argv, timeout=float(self.settings["timeout"]), env=self.env,
                                cwd=self.work)

    def container_tests(self, pool: ThreadPoolExecutor,
                        pid: bool) -> dict[str, commands.CommandResult]:
        """The functional test and the feature tests, run concurrently."""
        tests = {
            "functional": ([], self.image, ["cat", "/proc/self/uid_map"]),
            "missing_target": (["--bind", f"{self.work}:{MISSING_TARGET}"], self.image, ["true"]),
        }
        if self.settings["sif_image"]:
            tests["sif"] = ([], str(self.settings["sif_image"]), ["true"])
        futures = {name: pool.submit(self.exec, pid, *test) for name, test in tests.items()}
        return {name: future.result() for name, future in futures.items()}

    def probe(self) -> RuntimeProbe:
        with ThreadPoolExecutor(max_workers=5) as pool:
            version_job = pool.submit(self.context.run, [self.candidate.path, "--version"],
                                      float(self.settings["version_timeout"]), self.env)
            userns_job = pool.submit(user_namespaces, self.context)
            results = self.container_tests(pool, pid=not self.nested)
            version_result = version_job.result()
            if not version_result.ok:
                return self.reject(f"version check failed: {version_result.reason}")
            version, full, flavour = parse_version(version_result.stdout)
            if not re.search(r"\d", version):
                return self.reject(f"unrecognised version output {full[:60]!r}")
            features = {"nested": bool(self.nested), "pid_namespaces": not self.nested}
            reasons = {"nested": self.nested,
                       "user_namespaces": userns_job.result()[0],
                       "pid_namespaces": "not used when nested" if self.nested else ""}
            failed = judge(results["functional"], expect_uid_map=True)
            if failed and not self.nested:
                retry = self.container_tests(pool, pid=False)
                if not judge(retry["functional"], expect_uid_map=True):
                    features["pid_namespaces"] = False
                    reasons["pid_namespaces"] = f"--pid failed: {failed}"
                    failed, results = "", retry
        if failed:
            return self.reject(f"test in {self.image} failed: {failed}", version, full, flavour)
        for name in ("missing_target", "sif"):
            if name in results:
                why = judge(results[name], expect_uid_map=False)
                features[name], reasons[name] = not why, why
        uid_map = clean(results["functional"].stdout).strip().splitlines()[0]
        return RuntimeProbe(self.candidate, True, "", version, full,
                            flavour or _flavour_of(self.candidate.path),
                            privilege_mode(uid_map), features, reasons)

    def reject(self, reason: str, version: str = "", full: str = "",
               flavour: str = "") -> RuntimeProbe:
        return RuntimeProbe(self.candidate, False, reason, version, full, flavour)


def _flavour_of(path: str) -> str:
    return "apptainer" if os.path.basename(path) == "apptainer" else "singularity"


def _cache_key(candidate: RuntimeCandidate, image: str, settings: dict[str, Any]) -> str:
    return json.dumps([candidate.path, image, settings["sif_image"]])


def _cached(context: Context, key: str, ttl: float) -> RuntimeProbe | None:
    try:
        entry = json.loads((context.work_dir / CACHE).read_text())[key]
        if time.time() - float(entry["time"]) > ttl:
            return None
        fields = entry["probe"]
        return RuntimeProbe(**{**fields, "candidate": RuntimeCandidate(**fields["candidate"])})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(context: Context, key: str, probe: RuntimeProbe) -> None:
    path = context.work_dir / CACHE
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        entries = {}
    entries[key] = {"time": time.time(), "probe": asdict(probe)}
    try:
        atomic.write_text(path, json.dumps(entries, indent=1))
    except Exception as exc:  # a cache that cannot be written only costs time later
        context.note(f"probe cache not written: {exc}", "warning")


@hookimpl(trylast=True)
def glidein_runtime_probe(context: Context, facts: Facts,
                          candidate: RuntimeCandidate) -> RuntimeProbe:
    settings = {**SETTINGS, **context.settings("probe")}
    image = str(settings["test_image"]) or (facts.image.uri if facts.image else "")
    if not image:
        return RuntimeProbe(candidate, False, "no test image: no usable image for this node's "
                            "platforms, and no probe test_image setting")
    key, ttl = _cache_key(candidate, image, settings), float(settings["cache_ttl"])
    cached = _cached(context, key, ttl) if ttl > 0 else None
    if cached is not None:
        context.note(f"{candidate.path}: probe result from the cache (younger than {ttl:.0f} s)")
        return cached
    probe = _Prober(context, candidate, image, settings).probe()
    if probe.ok and ttl > 0:
        _store(context, key, probe)
    return probe
