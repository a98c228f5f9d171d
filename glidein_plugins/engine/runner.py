"""The phase runner: the only code that calls hook implementations.

It calls each implementation on its own (in pluggy's order) in a worker thread bounded by the
time budget, checks the type of what comes back, records every decision in the trace, and
applies each hook's policy when a plugin raises, overruns or returns nonsense. With a tracer
(``GLIDEIN_PLUGINS_TRACE=1``) every call is also printed, one line each, with its outcome.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

from glidein_plugins.container import image_checks
from glidein_plugins.container.images import node_platforms
from glidein_plugins.engine.manager import Plugins
from glidein_plugins.errors import Failure, FailureType, GlideinFailure
from glidein_plugins.spec.context import CALL_EVENTS, CURRENT_CALL, Context, Deadline
from glidein_plugins.spec.results import (
    Attribute,
    Bind,
    BindVerdict,
    ContainerInvocation,
    Facts,
    GpuDevice,
    Image,
    JobRequest,
    Library,
    Mode,
    ModeDecision,
    RuntimeCandidate,
    RuntimeProbe,
    TraceEvent,
)

WORK_SHARE = 0.9  # phases before 'advertise' get this share of the budget


@dataclass(frozen=True)
class HookPolicy:
    """What a hook returns (``many``: an iterable of ``item``) and whether a crash is fatal."""

    item: type
    many: bool
    fatal: bool
    phase: str


POLICIES: dict[str, HookPolicy] = {
    "glidein_mode_negotiate": HookPolicy(ModeDecision, False, True, "mode"),
    "glidein_images_contribute": HookPolicy(Image, True, False, "images"),
    "glidein_image_select": HookPolicy(Image, False, False, "images"),
    "glidein_runtime_discover": HookPolicy(RuntimeCandidate, True, False, "runtime"),
    "glidein_runtime_probe": HookPolicy(RuntimeProbe, False, False, "runtime"),
    "glidein_gpu_detect": HookPolicy(GpuDevice, True, False, "gpu"),
    "glidein_libraries_detect": HookPolicy(Library, True, False, "libraries"),
    "glidein_binds_contribute": HookPolicy(Bind, True, False, "binds"),
    "glidein_binds_validate": HookPolicy(BindVerdict, True, False, "binds"),
    "glidein_attributes_contribute": HookPolicy(Attribute, True, False, "advertise"),
    "glidein_job_launch": HookPolicy(ContainerInvocation, False, True, "job"),
}


@dataclass
class _Call:
    """One implementation running (or run) in its worker thread."""

    plugin: str
    started: float
    worker: threading.Thread = field(init=False)
    events: list[TraceEvent] = field(default_factory=list)
    result: Any = None
    error: BaseException | None = None


class Stop(Exception):
    """Raised inside the runner when the glidein must fail."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@dataclass
class SetupReport:
    """Everything a setup run decided."""

    facts: Facts
    attributes: tuple[Attribute, ...] = ()
    failure: Failure | None = None
    trace: list[TraceEvent] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failure else 0

    def metrics(self) -> dict[str, str]:
        """The metrics of the result XML."""
        mode = self.facts.mode
        if mode is None or mode.outcome in (Mode.DISABLE, Mode.FAIL):
            use = "Undefined"
        else:
            use = str(self.facts.has_singularity)
        metrics = {"use_singularity": use}
        if mode is not None:
            metrics["singularity_mode"] = mode.outcome.value
        metrics["attributes"] = str(len(self.attributes))
        return metrics


class Runner:
    """Runs the phases for one glidein, through the hooks of ``plugins``."""

    def __init__(self, plugins: Plugins, context: Context, tracer: TextIO | None = None):
        self.plugins = plugins
        self.context = context
        self.tracer = tracer
        self.budget = context.deadline
        # the work phases stop early enough to leave time to advertise what was learnt
        self.work = self.budget.share(WORK_SHARE)
        self.context.deadline = self.work
        self._early: dict[tuple[str, Any], _Call] = {}  # started by start_early, not yet taken

    # -- calling implementations ------------------------------------------------------------

    def _impls(self, hook: str) -> list[Any]:
        """Implementations in the order pluggy would call them (LIFO, tryfirst/trylast)."""
        return list(reversed(getattr(self.plugins.manager.hook, hook).get_hookimpls()))

    def _start(self, hook: str, impl: Any, kwargs: dict[str, Any]) -> _Call:
        """Start one implementation in a worker thread of its own."""
        policy = POLICIES[hook]
        call = _Call(impl.plugin_name, time.monotonic())

        def target() -> None:
            CURRENT_CALL.set((policy.phase, call.plugin))
            CALL_EVENTS.set(call.events)
            try:
                result = impl.function(*(kwargs[name] for name in impl.argnames))
                if policy.many and _is_collection(result, policy.item):
                    result = list(result)  # a generator's body runs here, within the budget
                call.result = result
            except BaseException as exc:  # reported when the result is taken, with the name
                call.error = exc

        call.worker = threading.Thread(target=target, name=f"{hook}:{call.plugin}", daemon=True)
        call.worker.start()
        return call

    def _finish(self, hook: str, call: _Call, deadline: Deadline) -> Any:
        """The call's checked result, or ``_FAILED`` after recording why it failed."""
        plugin = call.plugin
        call.worker.join(deadline.remaining())
        seconds = time.monotonic() - call.started
        events, call.events[:] = list(call.events), []  # what comes later is not kept
        for event in events:
            self.context.record(event)
        if call.worker.is_alive():
            self._trace_line(hook, plugin, seconds, "overran the time budget")
            return self._fail(hook, plugin, FailureType.WN_RESOURCE,
                              f"still running after {seconds:.1f} s: time budget exhausted")
        error = call.error
        if error is not None:
            why = f"raised {type(error).__name__}: {' '.join(str(error).split())}"
            self._trace_line(hook, plugin, seconds, why)
            if isinstance(error, GlideinFailure):  # a veto, not a crash
                raise Stop(Failure(error.failure_type,
                                   f"{self.plugins.describe(plugin)}: {error.message}"))
            return self._fail(hook, plugin, FailureType.CONFIG, why)
        if self.tracer is not None:  # a repr of 10,000 results is not free
            self._trace_line(hook, plugin, seconds, "-> " + repr(call.result))
        return self._checked(hook, plugin, call.result)

    def _call(self, hook: str, impl: Any, kwargs: dict[str, Any], deadline: Deadline) -> Any:
        """One implementation's checked result, or ``_FAILED`` after recording why it failed."""
        early = self._early.pop((hook, impl), None)
        if early is not None:
            return self._finish(hook, early, deadline)
        if deadline.expired:
            self._trace_line(hook, impl.plugin_name, 0.0, "not called: time budget exhausted")
            return self._fail(hook, impl.plugin_name, FailureType.WN_RESOURCE,
                              "not called: time budget exhausted")
        return self._finish(hook, self._start(hook, impl, kwargs), deadline)

    def start_early(self, hooks: Iterable[str]) -> None:
        """Start now every implementation of ``hooks`` that takes nothing but ``context``.

        Such an implementation depends on no earlier phase, so it runs concurrently with the
        phases before its own (a slow GPU query, a CVMFS check and the runtime probe overlap);
        its result is taken, checked and traced at its turn, so nothing else changes.
        """
        for hook in hooks:
            if POLICIES[hook].many:  # a firstresult hook calls its implementations in turn
                for impl in self._impls(hook):
                    if set(impl.argnames) <= {"context"}:
                        self._early[(hook, impl)] = self._start(hook, impl,
                                                                {"context": self.context})

    def _checked(self, hook: str, plugin: str, result: Any) -> Any:
        """``result`` if it has the type the hook promises (a list for ``many`` hooks)."""
        policy = POLICIES[hook]
        expected = policy.item.__name__
        if result is None:
            return [] if policy.many else None
        if not policy.many:
            if isinstance(result, policy.item):
                return result
            return self._fail(hook, plugin, FailureType.CONFIG,
                              f"returned {type(result).__name__}, not {expected}")
        if isinstance(result, policy.item):
            result = [result]
        if not isinstance(result, list):  # a str, a dict, a number: not a collection of items
            return self._fail(hook, plugin, FailureType.CONFIG,
                              f"returned {type(result).__name__}, not an iterable of {expected}")
        wrong = [item for item in result if not isinstance(item, policy.item)]
        if wrong:
            return self._fail(hook, plugin, FailureType.CONFIG,
                              f"returned a {type(wrong[0]).__name__} among its results, "
                              f"not {expected}: {_short(repr(wrong[0]))}")
        if policy.item is Attribute:
            from glidein_plugins.protocol.htcondor import reserved  # noqa: PLC0415 - setup only, not job start

            refused = next(filter(None, (reserved.why(item.name) for item in result)), "")
            if refused:  # it would reconfigure the startd or the glidein: the plugin is wrong
                return self._fail(hook, plugin, FailureType.CONFIG, f"attribute {refused}")
        return result

    def _fail(self, hook: str, plugin: str, failure_type: FailureType, why: str) -> Any:
        """Record a failed call; stop the glidein when the hook or the entry says it is fatal."""
        policy = POLICIES[hook]
        message = f"plugin {self.plugins.describe(plugin)} in {hook}: {why}"
        required = plugin in self.plugins.required
        self.context.record(TraceEvent(policy.phase, plugin, message, "error"))
        if policy.fatal or required:
            raise Stop(Failure(failure_type, message + (
                " (the plugin is required by the entry)" if required else "")))
        return _FAILED

    def _trace_line(self, hook: str, plugin: str, seconds: float, outcome: str) -> None:
        if self.tracer is not None:
            print(f"[trace] {hook} {plugin} ({seconds * 1000:.1f} ms) {_short(outcome)}",
                  file=self.tracer, flush=True)

    def call_all(self, hook: str, deadline: Deadline | None = None,
                 **kwargs: Any) -> list[tuple[str, Any]]:
        """``(plugin, item)`` for every item every implementation returned, in call order."""
        found: list[tuple[str, Any]] = []
        for impl in self._impls(hook):
            result = self._call(hook, impl, kwargs, deadline or self.context.deadline)
            if result is _FAILED:
                continue
            if POLICIES[hook].many:
                found += [(impl.plugin_name, item) for item in result]
            elif result is not None:
                found.append((impl.plugin_name, result))
        return found

    def call_first(self, hook: str, deadline: Deadline | None = None,
                   **kwargs: Any) -> tuple[str, Any] | None:
        """The first non-None ``(plugin, result)`` in call order (``firstresult`` hooks)."""
        for impl in self._impls(hook):
            result = self._call(hook, impl, kwargs, deadline or self.context.deadline)
            if result is not _FAILED and result is not None:
                return impl.plugin_name, result
        return None

    def note(self, phase: str, message: str, level: str = "info", plugin: str = "runner") -> None:
        self.context.record(TraceEvent(phase, plugin, message, level))

    # -- phases -----------------------------------------------------------------------------

    def negotiate(self, facts: Facts) -> ModeDecision:
        found = self.call_first("glidein_mode_negotiate", context=self.context, facts=facts)
        if found is None:
            raise Stop(Failure(FailureType.CONFIG, "no plugin decided the Singularity mode "
                                                   "(is the built-in 'mode' plugin disabled?)"))
        plugin, decision = found
        self.note("mode", decision.reason, "error" if decision.outcome is Mode.FAIL else "info",
                  plugin)
        return decision  # type: ignore[no-any-return]

    def find_runtime(self, facts: Facts) -> Facts:
        proposed = self.call_all("glidein_runtime_discover", context=self.context, facts=facts)
        candidates: dict[str, RuntimeCandidate] = {}
        for plugin, candidate in sorted(proposed, key=lambda found: found[1].priority):
            key = os.path.normpath(candidate.path)
            if key in candidates:
                self.note("runtime", f"{candidate.path} ({candidate.source}) from {plugin}: "
                          f"already proposed by {candidates[key].plugin}, probed once",
                          plugin=plugin)
            else:
                candidates[key] = replace(candidate, plugin=plugin)
        if not self._impls("glidein_runtime_discover"):
            self.note("runtime", "no enabled plugin implements glidein_runtime_discover",
                      "warning")
        rejected: list[RuntimeProbe] = []
        for candidate in candidates.values():
            if self.context.deadline.expired:
                probe = RuntimeProbe(candidate, False, "not probed: setup time budget exhausted")
            else:
                found = self.call_first("glidein_runtime_probe", context=self.context,
                                        facts=facts, candidate=candidate)
                probe = (replace(found[1], candidate=candidate) if found else
                         RuntimeProbe(candidate, False, "no plugin could probe it"))
            if probe.ok:
                self.note("runtime", f"using {candidate.path} ({candidate.source}, "
                          f"{probe.flavour} {probe.version}, {probe.privilege})")
                return facts.with_(runtime=probe, rejected_runtimes=tuple(rejected))
            self.note("runtime", f"rejected {candidate.path} ({candidate.source}): "
                      f"{probe.reason}", "warning")
            rejected.append(probe)
        facts = facts.with_(rejected_runtimes=tuple(rejected))
        self.note("runtime", facts.runtime_reason, "warning")
        return facts

    def detect_devices(self, facts: Facts) -> Facts:
        gpus: list[GpuDevice] = []
        seen: dict[str, str] = {}  # uuid -> the plugin that reported it first
        for plugin, gpu in self.call_all("glidein_gpu_detect", context=self.context, facts=facts):
            uuid = gpu.uuid.lower()
            if uuid and uuid in seen:
                self.note("gpu", f"{gpu.uuid} already reported by {seen[uuid]}: counted once",
                          plugin=plugin)
                continue
            if uuid:
                seen[uuid] = plugin
            gpus.append(replace(gpu, source=gpu.source or plugin))
        if not self._impls("glidein_gpu_detect"):
            self.note("gpu", "no enabled plugin implements glidein_gpu_detect: GPUs not looked "
                      "for")
        else:
            self.note("gpu", f"{len(gpus)} GPU(s) found")
        facts = facts.with_(gpus=tuple(gpus))
        libraries = [lib for _, lib in
                     self.call_all("glidein_libraries_detect", context=self.context, facts=facts)]
        if not self._impls("glidein_libraries_detect"):
            self.note("libraries", "no enabled plugin implements glidein_libraries_detect: "
                      "libraries not looked for")
        return facts.with_(libraries=tuple(libraries))

    def collect_images(self, facts: Facts) -> Facts:
        """The usable images, and the node's default one for its platforms."""
        images: dict[str, Image] = {}
        for plugin, image in self.call_all("glidein_images_contribute", context=self.context,
                                           facts=facts):
            if image.platform in images:
                self.note("images", f"{image.platform}: {image.uri} from {plugin} ignored, "
                          f"{images[image.platform].uri} came first", plugin=plugin)
            else:
                images[image.platform] = replace(image, source=image.source or plugin)
        facts = facts.with_(images=tuple(images.values()))
        platforms = node_platforms(self.context)
        chosen = self.select_image(facts, platforms)
        if chosen is not None:
            self.note("images", f"default image for {','.join(platforms)}: {chosen.platform} "
                      f"{chosen.uri}")
            return facts.with_(image=chosen)
        return self.judge_missing_image(facts, platforms)

    def judge_missing_image(self, facts: Facts, platforms: Sequence[str]) -> Facts:
        """No image for the node's platforms: a warning (GlideinWMS's default: the runtime is
        still proven with a test image and advertised, for jobs that bring their own image),
        or ``image_problem`` where the entry opted into failing for it."""
        try:
            summary, details = image_checks.missing(self.context, facts, platforms)
            required_by = image_checks.required_by(self.context, facts)
        except GlideinFailure as exc:
            raise Stop(Failure(exc.failure_type, exc.message)) from None
        details = f": {details}" if details else ""
        if required_by:  # the opt-in named before the details, which may be cut
            problem = f"{summary}, and {required_by}{details}"
            self.note("images", problem, "error")
            return facts.with_(image_problem=problem)
        self.note("images", f"{summary}{details}. The runtime is still proven (with a test "
                  "image) and advertised, as GlideinWMS does: only jobs that bring their own "
                  "image can run here (opt into failing instead: SINGULARITY_IMAGE_REQUIRED="
                  "true or settings.images.require_platform_image)", "warning")
        return facts


    def select_image(self, facts: Facts, platforms: Sequence[str]) -> Image | None:
        found = self.call_first("glidein_image_select", context=self.context, facts=facts,
                                platforms=tuple(platforms))
        return found[1] if found else None

    def collect_binds(self, facts: Facts) -> Facts:
        binds: dict[str, Bind] = {}
        for plugin, offered in self.call_all("glidein_binds_contribute", context=self.context,
                                             facts=facts):
            bind = replace(offered, origin=offered.origin or plugin)
            first = binds.get(os.path.normpath(bind.destination))
            if first is not None:
                self.note("binds", f"{bind.source} -> {bind.destination} ({bind.origin}) "
                          f"dropped: {first.source} ({first.origin}) binds there first")
            else:
                binds[os.path.normpath(bind.destination)] = bind
        offered = tuple(binds.values())
        refusals: dict[Bind, list[BindVerdict]] = {}
        for plugin, verdict in self.call_all("glidein_binds_validate", context=self.context,
                                             facts=facts, binds=offered):
            if not verdict.ok:
                refusals.setdefault(verdict.bind, []).append(replace(verdict, plugin=plugin))
        kept: list[Bind] = []
        rejected: list[BindVerdict] = []
        for bind in offered:
            if bind in refusals:
                reason = "; ".join(f"{v.plugin}: {v.reason}" for v in refusals[bind])
                rejected.append(BindVerdict(bind, False, reason, refusals[bind][0].plugin))
                # the reference's default binds (/hadoop, /ceph...) are optional by design
                self.note("binds", f"dropped {bind.source} -> {bind.destination}: {reason}",
                          "info" if bind.origin == "default" else "warning")
            else:
                kept.append(bind)
        return facts.with_(binds=tuple(kept), rejected_binds=tuple(rejected))

    def collect_attributes(self, facts: Facts) -> tuple[Attribute, ...]:
        """Every attribute offered, one per name (ClassAd names are case-insensitive)."""
        offers: dict[str, list[Attribute]] = {}
        for plugin, offered in self.call_all("glidein_attributes_contribute", self.budget,
                                             context=self.context, facts=facts):
            offers.setdefault(offered.name.lower(), []).append(replace(offered, plugin=plugin))
        return tuple(self._resolve(group) for group in offers.values())

    def _resolve(self, offers: list[Attribute]) -> Attribute:
        """One value for one name: all offers agree, or exactly one value says override."""
        overriding = [offer for offer in offers if offer.override]
        winner = (overriding or offers)[0]
        for other in overriding or offers:
            if (other.value, other.type) != (winner.value, winner.type):
                advice = ("both set override=True" if overriding else
                          "let exactly one of them set override=True")
                raise Stop(Failure(FailureType.CONFIG, (
                    f"attribute {winner.name} set to {winner.value!r} by plugin "
                    f"{self.plugins.describe(winner.plugin)} and to {other.value!r} by plugin "
                    f"{self.plugins.describe(other.plugin)}; {advice}, or disable one")))
        for loser in offers:
            if (loser.value, loser.type) != (winner.value, winner.type):
                self.note("advertise", f"{winner.name}={winner.value} from {winner.plugin} "
                          f"(override=True) wins over {loser.value} from {loser.plugin}",
                          plugin=winner.plugin)
        return winner

    def invocation(self, facts: Facts, job: JobRequest) -> ContainerInvocation | None:
        """At job start: how to launch ``job`` (None if no plugin builds an invocation).

        Raises ``Stop`` when a plugin raises or returns nonsense: the job must not start.
        """
        found = self.call_first("glidein_job_launch", context=self.context, facts=facts,
                                job=job)
        return found[1] if found else None

    # -- the whole setup --------------------------------------------------------------------

    def setup(self) -> SetupReport:
        """Run every setup phase in order; a failure is reported, never raised."""
        facts = Facts()
        for problem in self.plugins.problems:
            self.note("plugins", str(problem), "error" if problem.fatal else "warning",
                      problem.name)
        try:
            fatal = [problem for problem in self.plugins.problems if problem.fatal]
            if fatal:
                raise Stop(Failure(FailureType.CONFIG, "; ".join(map(str, fatal))))
            decision = self.negotiate(facts)
            facts = facts.with_(mode=decision)
            if decision.outcome is Mode.FAIL:
                raise Stop(Failure(FailureType.VO_CONFIG, decision.reason))
            self.start_early(["glidein_gpu_detect", "glidein_attributes_contribute"] + (
                ["glidein_images_contribute", "glidein_runtime_discover"]
                if decision.wants_container else []))
            if decision.wants_container:
                facts = self.collect_images(facts)
                if facts.image_problem:
                    self.note("runtime", "not looked for: no usable image, and the entry "
                              "requires one", "warning")
                else:
                    facts = self.find_runtime(facts)
            else:
                self.note("runtime", f"not looked for: {decision.outcome.value}")
            facts = self.detect_devices(facts)
            if facts.runtime is not None:
                facts = self.collect_binds(facts)
            self.context.deadline = self.budget  # advertising may use what is left of it all
            attributes = self.collect_attributes(facts)
            if decision.outcome is Mode.REQUIRED and not facts.has_singularity:
                late = " (the setup time budget ran out)" if self.work.expired else ""
                raise Stop(Failure(FailureType.WN_RESOURCE, "Singularity is REQUIRED but "
                                   f"{facts.singularity_reason}{late}"))
        except Stop as stop:
            self.note("result", f"FAILED ({stop.failure.type.value}): {stop.failure.message}",
                      "error")
            return SetupReport(facts, (), stop.failure, self.context.trace)
        return SetupReport(facts, attributes, None, self.context.trace)


_FAILED: Any = object()


def _is_collection(result: Any, item: type) -> bool:
    """True for what a ``many`` hook may return besides one item: a list, tuple, generator..."""
    return (result is not None and not isinstance(result, (item, str, bytes, Mapping))
            and isinstance(result, Iterable))


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tracer_from(environ: Mapping[str, str]) -> TextIO | None:
    """stderr when ``GLIDEIN_PLUGINS_TRACE`` is set to a true value, else None."""
    return sys.stderr if environ.get("GLIDEIN_PLUGINS_TRACE", "") not in ("", "0") else None
