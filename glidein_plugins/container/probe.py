"""Prove a runtime candidate really runs containers: what the built-in ``probe`` plugin and
the periodic re-check run.

In order, each step bounded by its own timeout (capped by the setup's budget):

1. the candidate must be an executable file (one bounded ``stat``: a stale CVMFS cannot hang us);
2. its version: ``BIN version`` and ``BIN --version`` concurrently; the number from the first
   (else from the second, minus its ``... version`` prefix), the flavour (``apptainer``,
   ``singularity-ce``, ``singularity-pro``, ``singularity``) from the full string. A binary that
   hangs here costs ``version_timeout``, not the container test's ``timeout``;
3. the container tests, concurrently, with GlideinWMS's production options
   (``--home WORK:/srv --pwd /srv --ipc --contain --pid``): the functional test
   ``cat /proc/self/uid_map`` in the test image (the exit code AND the output must be right,
   ``FATAL:`` on stderr fails it even with exit 0, ANSI colour codes are stripped), a bind onto a
   directory missing in the image (can it underlay/overlay?), and a SIF image when the
   ``sif_image`` setting names one. If the functional test fails with ``--pid`` (nodes inside
   Docker/Kubernetes) the tests are run again without it, and that is recorded; if it fails on
   devpts they are run again without ``--contain``/``--ipc``.

Unprivileged user namespaces on the host are looked at meanwhile. Already inside a container
(nested), ``--contain``, ``--ipc`` and ``--pid`` are never used ("Multiple devpts instances
unsupported"). The privilege mode comes from uid_map's first line: ``0 0`` privileged (setuid),
``0 N`` fakeroot, anything else unprivileged (user namespaces).

Features recorded (``RuntimeProbe.features``, with ``reasons`` saying why one is False):
``nested``, ``contain`` (``--contain``/``--ipc`` usable), ``pid_namespaces``,
``missing_target``, ``sif`` (only with ``sif_image``); ``reasons["user_namespaces"]`` is the
host's status (enabled/disabled/unavailable/error).

The test image is chosen by ``test_image.choose`` (the setting, else the node's default image,
else any usable image, else GlideinWMS's ``GWMS_SINGULARITY_IMAGE_DEFAULT``,
``APPTAINER_TEST_IMAGE`` and built-in remote test image); the probe records which one proved
the runtime. A failure in a remote test image is the image's (``test_image_failed``).

Settings (``settings: {probe: {...}}``): ``timeout`` (60 s, each container test),
``version_timeout`` (10 s, the stat and version checks), ``test_image`` (first choice),
``remote_test_image`` (true: a remote test image may prove the runtime whatever
``SINGULARITY_IMAGE_RESTRICTIONS`` says, as in GlideinWMS; false: only when it includes
``remote``), ``sif_image``, ``cache_ttl`` (3600 s; 0 disables the cache). A successful probe
is cached in ``.glidein_plugins/probe_cache.json`` under the glidein dir, so periodic re-checks
within the TTL run nothing.
"""


from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, TypeVar

from glidein_plugins.config.options import Option, Options
from glidein_plugins.container import test_image as test_images
from glidein_plugins.container.runtime import (
    clean,
    exec_options,
    judge,
    nested,
    parse_version,
    privilege_mode,
    runtime_env,
    user_namespaces,
)
from glidein_plugins.node import atomic, commands, paths
from glidein_plugins.node.background import Pending
from glidein_plugins.spec import checks
from glidein_plugins.spec.context import Context
from glidein_plugins.spec.results import Facts, RuntimeCandidate, RuntimeProbe

SETTINGS = Options(
    Option("timeout", 60.0, checks.seconds, "seconds for each container test"),
    Option("version_timeout", 10.0, checks.seconds, "seconds for the executable check, the "
           "version commands and the user-namespace check"),
    Option("test_image", "", checks.text,
           "image to test with instead of the node's default image ('': none)"),
    Option("remote_test_image", True, checks.boolean,
           "a remote test image (the built-in one included) may prove the runtime whatever "
           "SINGULARITY_IMAGE_RESTRICTIONS says, as the reference does; false: only when the "
           "restrictions include remote"),
    Option("sif_image", "", checks.text,
           "a SIF image: when set, SIF support is tested and published ('': none)"),
    Option("cache_ttl", 3600.0, checks.seconds_or_zero,
           "seconds a successful probe is reused; 0 disables the cache"),
)
MISSING_TARGET = "/glidein_plugins_missing_target"
CACHE = Path(".glidein_plugins") / "probe_cache.json"
CACHE_VERSION = 3
T = TypeVar("T")


class _Prober:
    """The checks of one candidate."""

    def __init__(self, context: Context, candidate: RuntimeCandidate,
                 test: test_images.TestImage, settings: Mapping[str, Any]) -> None:
        self.context = context
        self.candidate = candidate
        self.test = test
        self.image = test.uri
        self.settings = settings
        self.work = str(context.work_dir)
        self.env = runtime_env(context)
        self.nested = nested(context.environ)

    def submit(self, function: Callable[..., T], *args: Any) -> Pending[T]:
        """Run in a thread of its own, in this call's context (the trace names this plugin)."""
        return Pending(function, *args)

    def exec(self, options: list[str], extra: list[str], image: str,
             command: list[str]) -> commands.CommandResult:
        argv = [self.candidate.path, "exec", *options, *extra, image, *command]
        return self.context.run(argv, float(self.settings["timeout"]), self.env, self.work)

    def container_tests(self, options: list[str]) -> dict[str, commands.CommandResult]:
        """The functional test and the feature tests, run concurrently."""
        tests = {
            "functional": ([], self.image, ["cat", "/proc/self/uid_map"]),
            "missing_target": (["--bind", f"{self.work}:{MISSING_TARGET}"], self.image, ["true"]),
        }
        if self.settings["sif_image"]:
            tests["sif"] = ([], str(self.settings["sif_image"]), ["true"])
        futures = {name: self.submit(self.exec, options, *test) for name, test in tests.items()}
        return {name: future.result() for name, future in futures.items()}

    def check_program(self) -> str:
        """Why the candidate is not a program we can run ('' when it is)."""
        info = paths.inspect([self.candidate.path], float(self.settings["version_timeout"]),
                             self.context.quiet_run)[self.candidate.path]
        return paths.describe(info)

    def versions(self) -> tuple[str, str, str, str]:
        """``(version, full, flavour, why it failed)``."""
        timeout = float(self.settings["version_timeout"])
        short = self.submit(self.context.quiet_run, [self.candidate.path, "version"], timeout,
                            self.env)
        full = self.submit(self.context.run, [self.candidate.path, "--version"], timeout,
                           self.env)
        short_result, full_result = short.result(), full.result()
        if not (short_result.ok or full_result.ok):
            return "", "", "", f"version check failed: {full_result.reason}"
        version, text, flavour = parse_version(full_result.stdout if full_result.ok else "",
                                               short_result.stdout if short_result.ok else "")
        if not re.search(r"\d", version):
            return "", "", "", f"unrecognised version output {text[:60]!r}"
        return version, text, flavour or _flavour_from_name(self.candidate.path), ""

    def probe(self) -> RuntimeProbe:
        # the look at the file, the version commands and the user namespace check at once:
        # what the look says (missing, not executable) explains a failed version best
        program = self.submit(self.check_program)
        userns = self.submit(user_namespaces, self.context,
                             float(self.settings["version_timeout"]))
        version, full, flavour, why = self.versions()
        if program.result():
            return self.reject(program.result())
        if why:
            return self.reject(why)
        if not self.image:
            return self.reject(f"test image problem: {self.test.why_none}", version, full,
                               flavour, image_failed=True)
        contain = not self.nested
        features = {"nested": bool(self.nested), "contain": contain, "pid_namespaces": contain}
        reasons = {"nested": self.nested}
        if self.nested:
            why_not = f"not used: already inside a container ({self.nested})"
            reasons.update(contain=why_not, pid_namespaces=why_not)
            self.context.note(f"{self.candidate.path}: nested ({self.nested}): --contain, --ipc "
                              "and --pid not used")
        results = self.container_tests(exec_options(self.work, contain, contain))
        failed = judge(results["functional"], expect_uid_map=True)
        if failed and contain and not results["functional"].timed_out:
            failed, results = self.fall_back(failed, results, features, reasons)
        reasons["user_namespaces"] = userns.result()[0]
        if failed and self.test.remote:  # a pull needs the network: the image's problem
            return self.reject(f"the remote test image {self.image} ({self.test.source}) could "
                               f"not be run: {failed}", version, full, flavour,
                               image_failed=True)
        if failed:
            return self.reject(f"test in {self.image} failed: {failed}", version, full, flavour)
        for name in ("missing_target", "sif"):
            if name in results:
                why = judge(results[name], expect_uid_map=False)
                features[name], reasons[name] = not why, why
        uid_map = clean(results["functional"].stdout).strip().splitlines()[0]
        return RuntimeProbe(self.candidate, True, "", version, full, flavour,
                            privilege_mode(uid_map), features, reasons, self.image,
                            self.test.source)

    def fall_back(self, failed: str, results: dict[str, commands.CommandResult],
                  features: dict[str, bool], reasons: dict[str, str]
                  ) -> tuple[str, dict[str, commands.CommandResult]]:
        """Retry without ``--pid``, then (on a devpts failure) without ``--contain``/``--ipc``;
        record what had to be dropped. Returns the failure ('' once one passes) and results."""
        attempts = [("pid_namespaces", "--pid", exec_options(self.work, False))]
        if "devpts" in failed.lower():
            attempts.append(("contain", "--contain/--ipc", exec_options(self.work, False, False)))
        first = failed
        for feature, option, options in attempts:
            retry = self.container_tests(options)
            why = judge(retry["functional"], expect_uid_map=True)
            if not why:
                features["pid_namespaces"] = False
                reasons["pid_namespaces"] = f"--pid failed: {first}"
                if feature == "contain":
                    features["contain"] = False
                    reasons["contain"] = f"--contain failed: {first}"
                self.context.note(f"{self.candidate.path}: works without {option}: {first}",
                                  "warning")
                return "", retry
        return first, results

    def reject(self, reason: str, version: str = "", full: str = "", flavour: str = "",
               image_failed: bool = False) -> RuntimeProbe:
        return RuntimeProbe(self.candidate, False, reason, version, full, flavour,
                            test_image=self.image, test_image_source=self.test.source,
                            test_image_failed=image_failed)


def _flavour_from_name(path: str) -> str:
    return "apptainer" if os.path.basename(path).startswith("apptainer") else "singularity"


def cache_key(candidate: RuntimeCandidate, image: str, settings: Mapping[str, Any],
               environ: Mapping[str, str]) -> str:
    return json.dumps([CACHE_VERSION, candidate.path, image, str(settings["sif_image"]),
                       nested(environ)])


def cached_probe(context: Context, key: str, ttl: float) -> RuntimeProbe | None:
    try:
        entry = json.loads((context.work_dir / CACHE).read_text())[key]
        age = time.time() - float(entry["time"])
        if not 0 <= age <= ttl:
            return None
        fields = entry["probe"]
        return RuntimeProbe(**{**fields, "candidate": RuntimeCandidate(**fields["candidate"])})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(context: Context, key: str, probe: RuntimeProbe) -> None:
    path = context.work_dir / CACHE
    try:
        entries = json.loads(path.read_text())
        if not isinstance(entries, dict):
            entries = {}
    except (OSError, ValueError):
        entries = {}
    entries[key] = {"time": time.time(), "probe": asdict(probe)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, json.dumps(entries, indent=1))
    except Exception as exc:  # a cache that cannot be written only costs time later
        context.note(f"probe cache not written: {exc}", "warning")


def probe(context: Context, facts: Facts, candidate: RuntimeCandidate,
          settings: Mapping[str, Any]) -> RuntimeProbe:
    """``candidate`` probed with the probe's (checked) ``settings``, or its cached result."""
    test = test_images.choose(context, facts, settings)
    key = cache_key(candidate, test.uri, settings, context.environ)
    ttl = float(settings["cache_ttl"])
    cached = cached_probe(context, key, ttl) if ttl > 0 else None
    if cached is not None:
        context.note(f"{candidate.path}: probe result from the cache (younger than {ttl:.0f} s)")
        return cached
    found = _Prober(context, candidate, test, settings).probe()
    if found.ok and ttl > 0:
        _store(context, key, found)
    return found
