"""The phase runner: the phases of a setup, in order, on top of ``HookCaller`` (the only
code that calls hook implementations: ``engine.calls``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from glidein_plugins.container import image_checks
from glidein_plugins.container.images import node_platforms
from glidein_plugins.engine.calls import HookCaller, Stop
from glidein_plugins.errors import Failure, FailureType, GlideinFailure
from glidein_plugins.spec.results import (
    Attribute,
    Bind,
    BindVerdict,
    ContainerInvocation,
    Facts,
    GpuDevice,
    Image,
    JobRequest,
    Mode,
    ModeDecision,
    RuntimeCandidate,
    RuntimeProbe,
    TraceEvent,
)


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


class Runner(HookCaller):
    """Runs the phases for one glidein, through the hooks of ``plugins``."""

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
