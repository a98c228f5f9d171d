"""The phase runner, driven through real plugins: modules written into a site plugin directory,
loaded by ``manager.build`` and run by ``Runner.setup()`` (commands, where a phase runs one, are
real subprocesses)."""

from __future__ import annotations

import io
import os
import stat
import textwrap
import time
from pathlib import Path

import pytest
from conftest import make_work_dir, run_cli

from glidein_plugins.config.model import EntryConfig, Setting
from glidein_plugins.engine import manager
from glidein_plugins.engine.calls import Stop
from glidein_plugins.engine.registry import BUILTINS
from glidein_plugins.engine.runner import Runner, SetupReport
from glidein_plugins.errors import FailureType
from glidein_plugins.protocol.glideinwms import glidein_config
from glidein_plugins.spec.context import Context, Deadline
from glidein_plugins.spec.hookspecs import POLICIES
from glidein_plugins.spec.results import Facts, JobRequest

CORE = ("mode", "singularity")
# built-ins other helpers may add (real runtime or GPU discovery) would make results depend on
# the test machine: these tests run the two core built-ins and their own plugins only
OTHER_BUILTINS = tuple(name for name in BUILTINS if name not in CORE)

HEADER = """\
from __future__ import annotations
import os
import time
from glidein_plugins import (
    Attribute, AttrType, Bind, BindVerdict, ContainerInvocation, FailureType, GlideinFailure,
    GpuDevice, Image, Library, ModeDecision, RuntimeCandidate, RuntimeProbe, hookimpl)
"""

# a plugin that offers an image and proposes and proves a runtime, so that every phase runs
RUNTIME = """
@hookimpl
def glidein_images_contribute():
    return [Image("rhel8", "/opt/test/el8")]

@hookimpl
def glidein_runtime_discover():
    return [RuntimeCandidate("/opt/test/bin/apptainer", "test")]

@hookimpl
def glidein_runtime_probe(candidate):
    return RuntimeProbe(candidate, True, version="1.3.4", flavour="apptainer",
                        privilege="unprivileged")

@hookimpl
def glidein_binds_contribute():
    return [Bind("/etc/hosts")]
"""

PREFERRED = "GLIDEIN_Singularity_Use PREFERRED\n"
REQUIRED = "GLIDEIN_Singularity_Use REQUIRED\n"


class Run:
    """One setup run over the core built-ins plus ``plugins`` (file name -> source)."""

    def __init__(self, tmp_path: Path, plugins: dict[str, str], config: str = "",
                 budget: float = 60.0, required: tuple[str, ...] = (),
                 settings: dict[str, dict[str, str]] | None = None,
                 tracer: io.StringIO | None = None) -> None:
        site = tmp_path / "site"
        site.mkdir(parents=True, exist_ok=True)
        for name, source in plugins.items():
            # a snippet gets the usual imports; a whole module (it imports) is used as it is
            text = source if "import " in source else HEADER + textwrap.dedent(source)
            (site / f"{name}.py").write_text(text)
        self.entry = EntryConfig(
            "TEST_ENTRY", budget_seconds=budget, disable=OTHER_BUILTINS, required=required,
            directories=(str(site),),
            settings={plugin: {key: Setting(value, "test.yaml:1") for key, value in values.items()}
                      for plugin, values in (settings or {}).items()})
        self.plugins = manager.build(self.entry, {})
        assert not self.plugins.problems, self.plugins.problems
        self.context = Context(self.entry, glidein_config.parse(config), tmp_path,
                               Deadline(budget), {})
        self.runner = Runner(self.plugins, self.context, tracer)
        self.report: SetupReport = self.runner.setup()

    @property
    def attributes(self) -> dict[str, str]:
        return {attr.name: attr.value for attr in self.report.attributes}

    def errors(self, plugin: str) -> list[str]:
        return [e.message for e in self.report.trace if e.plugin == plugin and e.level == "error"]

    def messages(self) -> str:
        return "\n".join(f"{e.plugin}: {e.message}" for e in self.report.trace)


def plugin(hook: str, body: str, args: str = "", marker: str = "@hookimpl") -> str:
    """The source of one hook implementation."""
    return f"\n{marker}\ndef {hook}({args}):\n{textwrap.indent(textwrap.dedent(body), '    ')}\n"


# -- call order ---------------------------------------------------------------------------------


@pytest.mark.parametrize("markers", [
    {},
    {"a": "tryfirst", "d": "trylast"},
    {"b": "trylast", "c": "tryfirst", "d": "tryfirst"},
])
def test_call_order_is_pluggys(tmp_path, markers):
    plugins = {
        name: plugin("glidein_libraries_detect", f"return [Library({name!r})]",
                     marker=f"@hookimpl({markers[name]}=True)" if name in markers else "@hookimpl")
        for name in "abcd"
    }
    run = Run(tmp_path, plugins)
    by_pluggy = run.plugins.manager.hook.glidein_libraries_detect(context=run.context,
                                                                  facts=Facts())
    expected = [library.name for libraries in by_pluggy for library in libraries]
    assert [library.name for library in run.report.facts.libraries] == expected
    if not markers:
        assert expected == ["d", "c", "b", "a"]  # last registered (file name order) first


# -- implementations started early -------------------------------------------------------------

SLOW = """
@hookimpl
def glidein_gpu_detect(context):
    context.note("gpu query started")
    time.sleep(1)
    return [GpuDevice("nvidia", "Slow GPU", "GPU-5106")]

@hookimpl
def glidein_attributes_contribute(context):
    context.note("CVMFS check started")
    time.sleep(1)
    return [Attribute("SLOW_CHECK", "True")]

@hookimpl
def glidein_runtime_probe(candidate):
    time.sleep(1)
    return RuntimeProbe(candidate, True, version="1.3.4", flavour="apptainer")

@hookimpl
def glidein_libraries_detect(facts):
    return [Library(f"seen:{len(facts.gpus)}")]
"""


def test_implementations_that_take_only_context_overlap_the_phases_before_theirs(tmp_path):
    """Three one-second steps (a GPU query, an attribute check, the runtime probe) take about
    one second, not three; results and the trace keep the phase order; an implementation
    that takes ``facts`` still sees what the phases before it found."""
    started = time.monotonic()
    run = Run(tmp_path, {"runtime": RUNTIME, "slow": SLOW}, PREFERRED)
    elapsed = time.monotonic() - started
    assert elapsed < 2.5, f"{elapsed:.1f} s: the slow steps ran one after the other"
    assert run.report.failure is None
    assert run.attributes["SLOW_CHECK"] == "True"
    assert [gpu.uuid for gpu in run.report.facts.gpus] == ["GPU-5106"]
    assert [lib.name for lib in run.report.facts.libraries] == ["seen:1"]
    phases = [event.phase for event in run.report.trace]
    assert phases.index("gpu") > phases.index("runtime")  # recorded at its turn
    assert phases.index("advertise") > phases.index("gpu")
    notes = [event.message for event in run.report.trace if event.plugin == "slow"]
    assert notes == ["gpu query started", "CVMFS check started"]


def test_nothing_is_started_early_for_a_phase_the_mode_skips(tmp_path):
    skipped = """
    @hookimpl
    def glidein_images_contribute():
        open(__file__ + ".images", "w").close()

    @hookimpl
    def glidein_runtime_discover():
        open(__file__ + ".runtime", "w").close()
    """
    run = Run(tmp_path, {"skipped": skipped}, "GLIDEIN_Singularity_Use NEVER\n")
    time.sleep(0.2)  # what was started would have run by now
    assert run.report.failure is None
    assert not list((tmp_path / "site").glob("skipped.py.*"))


# -- a plugin that fails ------------------------------------------------------------------------

NON_FATAL_HOOKS = {  # hook -> the arguments beyond (context, facts) it takes
    "glidein_images_contribute": "",
    "glidein_image_select": "platforms",
    "glidein_runtime_discover": "",
    "glidein_runtime_probe": "candidate",
    "glidein_gpu_detect": "",
    "glidein_libraries_detect": "",
    "glidein_binds_contribute": "",
    "glidein_binds_validate": "binds",
    "glidein_attributes_contribute": "",
}


def test_the_isolation_tests_cover_every_setup_hook():
    setup_hooks = [hook for hook, policy in POLICIES.items()
                   if policy.phase != "job" and not policy.fatal]
    assert list(NON_FATAL_HOOKS) == setup_hooks


@pytest.mark.parametrize("required", [False, True], ids=["optional", "required"])
@pytest.mark.parametrize("hook", NON_FATAL_HOOKS)
def test_a_crash_is_isolated_unless_the_plugin_is_required(tmp_path, hook, required):
    bad = plugin(hook, f"raise RuntimeError('boom in {hook}')", NON_FATAL_HOOKS[hook])
    run = Run(tmp_path, {"a_runtime": RUNTIME, "z_bad": bad}, PREFERRED,
              required=("z_bad",) if required else ())
    expected = f"plugin z_bad (site) in {hook}: raised RuntimeError: boom in {hook}"
    assert any(expected in message for message in run.errors("z_bad")), run.messages()
    if required:
        assert run.report.failure is not None
        assert run.report.failure.type is FailureType.CONFIG
        assert expected in run.report.failure.message
        assert "required by the entry" in run.report.failure.message
        assert run.report.attributes == ()
    else:  # the run went on to the end, with the other plugins' answers
        assert run.report.failure is None, run.messages()
        assert run.report.facts.runtime is not None
        assert run.attributes["HAS_SINGULARITY"] == "True"


@pytest.mark.parametrize("body, why", [
    ("raise KeyError('GLIDEIN_Singularity_Use')", "raised KeyError"),
    ("return {'outcome': 'REQUIRED'}", "returned dict, not ModeDecision"),
])
def test_mode_negotiation_failure_is_fatal(tmp_path, body, why):
    run = Run(tmp_path, {"vo_mode": plugin("glidein_mode_negotiate", body)}, PREFERRED)
    failure = run.report.failure
    assert failure is not None and failure.type is FailureType.CONFIG
    assert f"plugin vo_mode (site) in glidein_mode_negotiate: {why}" in failure.message


@pytest.mark.parametrize("hook, failure_type", [
    ("glidein_mode_negotiate", FailureType.VO_CONFIG),
    ("glidein_runtime_probe", FailureType.WN_RESOURCE),
    ("glidein_gpu_detect", FailureType.WN_RESOURCE),
    ("glidein_attributes_contribute", FailureType.VO_PROXY),
])
def test_glidein_failure_is_a_veto(tmp_path, hook, failure_type):
    body = f"raise GlideinFailure(FailureType.{failure_type.name}, 'this node cannot serve us')"
    args = "candidate" if hook == "glidein_runtime_probe" else ""
    run = Run(tmp_path, {"a_runtime": RUNTIME, "vo_veto": plugin(hook, body, args)}, PREFERRED)
    failure = run.report.failure
    assert failure is not None and failure.type is failure_type
    assert failure.message == "vo_veto (site): this node cannot serve us"
    assert run.report.exit_code == 1 and run.report.attributes == ()


@pytest.mark.parametrize("hook, args, body, why", [
    ("glidein_attributes_contribute", "", "return [{'name': 'X', 'value': '1'}]",
     "returned a dict among its results, not Attribute"),
    ("glidein_attributes_contribute", "", "return {'X': '1'}",
     "returned dict, not an iterable of Attribute"),
    ("glidein_runtime_discover", "", "return '/usr/bin/apptainer'",
     "returned str, not an iterable of RuntimeCandidate"),
    ("glidein_runtime_probe", "candidate", "return True", "returned bool, not RuntimeProbe"),
    ("glidein_gpu_detect", "", "return 2", "returned int, not an iterable of GpuDevice"),
    ("glidein_binds_contribute", "", "yield Bind('/scratch')\nraise OSError('stale mount')",
     "raised OSError: stale mount"),  # a generator's body runs inside the runner's guard
    ("glidein_binds_validate", "binds", "return [bind.source for bind in binds]",
     "returned a str among its results, not BindVerdict"),
    ("glidein_image_select", "platforms", "return platforms[0]", "returned str, not Image"),
])
def test_a_wrong_result_is_isolated_and_named(tmp_path, hook, args, body, why):
    run = Run(tmp_path, {"a_runtime": RUNTIME, "z_odd": plugin(hook, body, args)}, PREFERRED)
    assert run.report.failure is None, run.messages()
    assert f"plugin z_odd (site) in {hook}: {why}" in "\n".join(run.errors("z_odd"))
    assert run.report.facts.runtime is not None
    assert "/scratch" not in [bind.destination for bind in run.report.facts.binds]


# -- the time budget ----------------------------------------------------------------------------


@pytest.mark.parametrize("hook", ["glidein_gpu_detect", "glidein_attributes_contribute"])
def test_a_plugin_past_the_budget_does_not_hold_the_setup(tmp_path, hook):
    started = time.monotonic()
    run = Run(tmp_path, {"z_slow": plugin(hook, "time.sleep(8)")}, PREFERRED, budget=1)
    elapsed = time.monotonic() - started
    assert elapsed < 1 + 4, elapsed  # generous slack for a loaded machine; the plugin takes 8
    assert run.report.failure is None, run.messages()
    assert any("time budget exhausted" in message for message in run.errors("z_slow")), \
        run.messages()


def test_the_cli_setup_ends_within_the_budget(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "slow.py").write_text(HEADER + plugin("glidein_gpu_detect", "time.sleep(30)"))
    config = tmp_path / "entry.yaml"
    config.write_text(f"version: 1\ndefaults:\n  budget_seconds: 1\n"
                      f"  plugins: {{directories: [{site}]}}\n")
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": "PREFERRED"})
    started = time.monotonic()
    proc = run_cli(["setup", "glidein_config", "entry", "--config", str(config)], work, timeout=30)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert elapsed < 15, elapsed  # interpreter start-up included; the plugin alone takes 30
    assert "time budget" in proc.stdout + proc.stderr
    assert "<status>OK</status>" in (work / "otrb_output.xml").read_text()


# -- attributes from several plugins ------------------------------------------------------------


def attribute(name: str, value: str, override: bool = False) -> str:
    return plugin("glidein_attributes_contribute",
                  f"return [Attribute({name!r}, {value!r}, AttrType.STRING, override={override})]")


@pytest.mark.parametrize("offers, winner", [
    ([("VO_SITE", "A", False), ("VO_SITE", "A", False)], "A"),
    ([("VO_SITE", "A", False), ("VO_SITE", "B", True)], "B"),
    ([("VO_SITE", "A", True), ("VO_SITE", "B", False)], "A"),
    ([("VO_SITE", "A", False), ("VO_SITE", "B", False), ("VO_SITE", "C", True)], "C"),
    ([("VO_SITE", "A", False), ("Vo_Site", "A", False)], "A"),
])
def test_attribute_offers_that_agree_or_override(tmp_path, offers, winner):
    run = Run(tmp_path, {f"p{i}": attribute(*offer) for i, offer in enumerate(offers)})
    assert run.report.failure is None, run.messages()
    chosen = [a for a in run.report.attributes if a.name.lower() == "vo_site"]
    assert [a.value for a in chosen] == [winner]
    overriding = [f"p{i}" for i, offer in enumerate(offers) if offer[2]]
    if overriding:
        assert chosen[0].plugin == overriding[0]
        assert any("override=True" in message and "wins over" in message
                   for message in run.messages().splitlines()), run.messages()


@pytest.mark.parametrize("offers", [
    [("VO_SITE", "A", False), ("VO_SITE", "B", False)],
    [("VO_SITE", "A", True), ("VO_SITE", "B", True)],
    [("VO_SITE", "A", False), ("Vo_Site", "B", False)],  # ClassAd names ignore case
])
def test_conflicting_attributes_fail_naming_both_plugins(tmp_path, offers):
    run = Run(tmp_path, {f"p{i}": attribute(*offer) for i, offer in enumerate(offers)})
    failure = run.report.failure
    assert failure is not None and failure.type is FailureType.CONFIG
    assert "p0 (site)" in failure.message and "p1 (site)" in failure.message
    assert "'A'" in failure.message and "'B'" in failure.message


def test_settings_reach_the_plugin_that_asks(tmp_path):
    sample = (Path(__file__).parent / "plugins" / "sample_vo.py").read_text()
    run = Run(tmp_path, {"sample_vo": sample}, settings={"sample_vo": {"site": "T2_Test"}})
    assert run.attributes["SAMPLE_VO_SITE"] == "T2_Test"
    assert run.attributes["SAMPLE_VO_READY"] == "True"


# -- runtime discovery and probing (real commands) ----------------------------------------------

PROBE = """
PROBED = []

@hookimpl
def glidein_runtime_probe(context, candidate):
    PROBED.append(candidate.path)
    result = context.run([candidate.path, "version"], timeout=20)
    if not result.ok:
        return RuntimeProbe(candidate, False, result.reason)
    return RuntimeProbe(candidate, True, version=result.stdout.split()[-1], flavour="apptainer",
                        privilege="unprivileged")
"""


def fake_runtimes(tmp_path: Path) -> dict[str, str]:
    """Executables that behave like a working and a broken runtime, and a path that is missing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {"good": "echo 'apptainer version 1.3.4'",
               "other": "echo 'apptainer version 1.2.5'",
               "broken": "echo 'FATAL: kernel too old' >&2; exit 1"}
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return {name: str(bin_dir / name) for name in (*scripts, "missing")}


def discover(*candidates: tuple[str, int]) -> str:
    """A discovery plugin proposing ``candidates``; it also offers the image to prove them with."""
    found = ", ".join(f"RuntimeCandidate({path!r}, 'test', {priority})"
                      for path, priority in candidates)
    return (plugin("glidein_runtime_discover", f"return [{found}]")
            + plugin("glidein_images_contribute", "return [Image('rhel9', '/opt/test/el9')]"))


def test_candidates_are_probed_by_priority_once_each_until_one_works(tmp_path):
    paths = fake_runtimes(tmp_path)
    broken_too = os.path.join(tmp_path, "bin", "..", "bin", "broken")  # the same binary
    run = Run(tmp_path, {
        "a_disc": discover((paths["good"], 30), (paths["broken"], 20), (paths["missing"], 10)),
        "b_disc": discover((broken_too, 20), (paths["other"], 40)),
        "c_probe": PROBE,
    }, PREFERRED)
    # b_disc is called first, so of the two equal proposals of one binary its spelling is kept
    probed = run.plugins.manager.get_plugin("c_probe").PROBED
    assert probed == [paths["missing"], broken_too, paths["good"]]
    facts = run.report.facts
    assert facts.runtime is not None and facts.runtime.candidate.path == paths["good"]
    assert (facts.runtime.version, facts.runtime.candidate.plugin) == ("1.3.4", "a_disc")
    rejected = {probe.candidate.path: probe for probe in facts.rejected_runtimes}
    assert list(rejected) == [paths["missing"], broken_too]
    assert rejected[paths["missing"]].reason.endswith("not found")
    assert rejected[broken_too].reason.endswith("exit code 1: FATAL: kernel too old")
    assert rejected[broken_too].candidate.plugin == "b_disc"
    assert f"{paths['broken']} (test) from a_disc: already proposed by b_disc, probed once" in \
        run.messages()
    assert run.attributes["SINGULARITY_VERSION"] == "1.3.4"


def test_required_without_a_working_runtime_names_every_candidate(tmp_path):
    paths = fake_runtimes(tmp_path)
    run = Run(tmp_path, {"a_disc": discover((paths["broken"], 1), (paths["missing"], 2)),
                         "c_probe": PROBE}, REQUIRED)
    failure = run.report.failure
    assert failure is not None and failure.type is FailureType.WN_RESOURCE
    assert f"{paths['broken']} (test): {paths['broken']}: exit code 1" in failure.message
    assert f"{paths['missing']} (test): {paths['missing']}: not found" in failure.message


def test_no_optional_plugins_gives_an_explained_result(tmp_path):
    run = Run(tmp_path, {}, PREFERRED)
    assert run.report.failure is None
    assert run.attributes["HAS_SINGULARITY"] == "False"
    assert run.attributes["HAS_SINGULARITY_REASON"] == (
        "no container runtime found: no candidate binary was proposed")
    messages = run.messages()
    assert "no enabled plugin implements glidein_runtime_discover" in messages
    assert "no enabled plugin implements glidein_gpu_detect: GPUs not looked for" in messages
    assert "no enabled plugin implements glidein_libraries_detect" in messages

    required = Run(tmp_path / "required", {}, REQUIRED).report.failure
    assert required is not None and required.type is FailureType.WN_RESOURCE
    assert required.message == ("Singularity is REQUIRED but no container runtime found: "
                                "no candidate binary was proposed")


# -- images, binds, GPUs ------------------------------------------------------------------------


def test_images_first_contribution_per_platform_wins(tmp_path):
    run = Run(tmp_path, {
        "a_runtime": RUNTIME,
        "b_site": plugin("glidein_images_contribute",
                         "return [Image('rhel9', '/cvmfs/site/el9'), "
                         "Image('default', '/cvmfs/d')]"),
        "c_vo": plugin("glidein_images_contribute", "return [Image('rhel9', '/cvmfs/vo/el9')]"),
        "d_select": plugin("glidein_image_select", """\
            usable = {image.platform: image for image in facts.images}
            return next((usable[p] for p in platforms if p in usable), None)""",
                           "facts, platforms"),
    }, PREFERRED)
    images = [(image.platform, image.uri, image.source) for image in run.report.facts.images]
    assert images == [("rhel9", "/cvmfs/vo/el9", "c_vo"), ("default", "/cvmfs/d", "b_site"),
                      ("rhel8", "/opt/test/el8", "a_runtime")]
    # the runner chose the node's default image (platforms: any) with the selecting plugin
    assert run.report.facts.image == run.report.facts.images[1]
    assert "rhel9: /cvmfs/site/el9 from b_site ignored, /cvmfs/vo/el9 came first" in run.messages()
    chosen = run.runner.select_image(run.report.facts, ["rhel7", "rhel9", "default"])
    assert chosen is not None and chosen.uri == "/cvmfs/vo/el9"
    assert run.runner.select_image(run.report.facts, ["rhel6"]) is None


# two validators, each judging the whole list at once (and recording what it was given)
BINDS_CHECK = """
CALLS = []

@hookimpl
def glidein_binds_validate(binds):
    CALLS.append(binds)
    for bind in binds:
        if not os.path.exists(bind.source):
            yield BindVerdict(bind, False, 'source missing on the host')
        elif bind.destination == '/etc/hosts':
            yield BindVerdict(bind, True, 'fine by me')
"""
BINDS_VETO = """
@hookimpl
def glidein_binds_validate(binds):
    return [BindVerdict(bind, False, 'site policy') for bind in binds
            if bind.destination in ('/opt', '/etc/hosts')]
"""


def test_binds_deduplicated_by_destination_then_validated_at_once(tmp_path):
    site_data, vo_data, absent = tmp_path / "site-data", tmp_path / "vo-data", tmp_path / "none"
    site_data.mkdir()
    vo_data.mkdir()
    run = Run(tmp_path, {
        "a_runtime": RUNTIME,  # offers /etc/hosts; called last
        "b_site": plugin("glidein_binds_contribute",
                         f"return [Bind({str(site_data)!r}, '/data'), "
                         f"Bind({str(absent)!r}, '/opt')]"),
        "c_vo": plugin("glidein_binds_contribute", f"return [Bind({str(vo_data)!r}, '/data/')]"),
        "d_check": BINDS_CHECK,
        "e_veto": BINDS_VETO,
    }, PREFERRED)
    facts = run.report.facts
    # c_vo is called before b_site: its /data/ (the same destination as /data) wins
    offered = [(str(vo_data), "/data/", "c_vo"), (str(absent), "/opt", "b_site"),
               ("/etc/hosts", "/etc/hosts", "a_runtime")]
    assert f"{site_data} -> /data (b_site) dropped: {vo_data} (c_vo) binds there first" in \
        run.messages()
    # d_check got every de-duplicated bind in one call
    calls = run.plugins.manager.get_plugin("d_check").CALLS
    assert [[(b.source, b.destination, b.origin) for b in binds] for binds in calls] == [offered]
    assert [(b.source, b.destination, b.origin) for b in facts.binds] == offered[:1]
    # one refusal drops a bind whatever others say; every refusal's reason is kept, in call order
    assert [(v.bind.destination, v.ok, v.reason, v.plugin) for v in facts.rejected_binds] == [
        ("/opt", False, "e_veto: site policy; d_check: source missing on the host", "e_veto"),
        ("/etc/hosts", False, "e_veto: site policy", "e_veto")]
    assert "dropped /etc/hosts -> /etc/hosts: e_veto: site policy" in run.messages()


def test_gpus_deduplicated_by_uuid(tmp_path):
    run = Run(tmp_path, {
        "a_nvml": plugin("glidein_gpu_detect", """\
            return [GpuDevice('nvidia', 'A100', uuid='GPU-aaaa'),
                    GpuDevice('nvidia', 'A100', uuid='GPU-bbbb')]"""),
        "b_smi": plugin("glidein_gpu_detect", """\
            return [GpuDevice('nvidia', 'A100', uuid='GPU-AAAA'),
                    GpuDevice('other', 'no uuid'), GpuDevice('other', 'no uuid')]"""),
    })
    gpus = [(gpu.uuid, gpu.source) for gpu in run.report.facts.gpus]
    # b_smi is called first; devices without a UUID cannot be told apart and all count
    assert gpus == [("GPU-AAAA", "b_smi"), ("", "b_smi"), ("", "b_smi"), ("GPU-bbbb", "a_nvml")]
    assert "GPU-aaaa already reported by b_smi: counted once" in run.messages()
    assert "4 GPU(s) found" in run.messages()


# -- job start ----------------------------------------------------------------------------------


@pytest.mark.parametrize("body, outcome", [
    ("return ContainerInvocation(('apptainer', 'exec', 'img', *job.argv), image='img')",
     ("apptainer", "exec", "img", "/bin/true")),
    ("return None", None),
    ("raise RuntimeError('no image for this job')", "raised RuntimeError: no image for this job"),
    ("return ['apptainer', 'exec']", "returned list, not ContainerInvocation"),
])
def test_job_launch(tmp_path, body, outcome):
    run = Run(tmp_path, {"vo_job": plugin("glidein_job_launch", body, "facts, job")})
    job = JobRequest(("/bin/true",), {"SingularityImage": '"img"'})
    if isinstance(outcome, str):  # the job must not start
        with pytest.raises(Stop) as stop:
            run.runner.invocation(run.report.facts, job)
        assert stop.value.failure.type is FailureType.CONFIG
        assert f"plugin vo_job (site) in glidein_job_launch: {outcome}" in str(stop.value)
    else:
        invocation = run.runner.invocation(run.report.facts, job)
        assert (invocation.argv if invocation else None) == outcome


# -- tracing and the phase order ----------------------------------------------------------------

# a plugin with every setup hook: each call is traced, so the trace shows the phase order
TRACED = """
@hookimpl
def glidein_mode_negotiate():
    return None

@hookimpl
def glidein_images_contribute():
    return [Image('rhel9', '/opt/traced/el9')]

@hookimpl
def glidein_image_select(facts, platforms):
    return facts.images[0] if facts.images else None

@hookimpl
def glidein_runtime_discover():
    return [RuntimeCandidate('/opt/traced/apptainer', 'traced')]

@hookimpl
def glidein_runtime_probe(candidate):
    return RuntimeProbe(candidate, True, version='1.3.4', privilege='unprivileged')

@hookimpl
def glidein_gpu_detect():
    raise RuntimeError('no driver')

@hookimpl
def glidein_libraries_detect():
    return []

@hookimpl
def glidein_binds_contribute():
    return [Bind('/etc/hosts')]

@hookimpl
def glidein_binds_validate(binds):
    return []

@hookimpl
def glidein_attributes_contribute():
    return [Attribute.string('TRACED', 'yes')]
"""
# the calls it leads to, in order, with the core built-ins
NEGOTIATE = [("glidein_mode_negotiate", "traced"), ("glidein_mode_negotiate", "mode")]
DEVICES = [("glidein_gpu_detect", "traced"), ("glidein_libraries_detect", "traced")]
ADVERTISE = [("glidein_attributes_contribute", "traced"),
             ("glidein_attributes_contribute", "singularity")]
PHASE_ORDER = {
    # containers wanted: images (the runtime is proven with one), runtime, devices, binds
    PREFERRED: [*NEGOTIATE,
                ("glidein_images_contribute", "traced"), ("glidein_image_select", "traced"),
                ("glidein_runtime_discover", "traced"), ("glidein_runtime_probe", "traced"),
                *DEVICES,
                ("glidein_binds_contribute", "traced"), ("glidein_binds_validate", "traced"),
                *ADVERTISE],
    # not wanted: no image, runtime or bind hook is called
    "GLIDEIN_Singularity_Use NEVER\n": [*NEGOTIATE, *DEVICES, *ADVERTISE],
    "": [*NEGOTIATE, *DEVICES, *ADVERTISE],  # DISABLE
}


@pytest.mark.parametrize("config", PHASE_ORDER, ids=["PREFERRED", "NEVER", "DISABLE"])
def test_a_tracer_gets_one_line_per_hook_call_in_phase_order(tmp_path, config):
    out = io.StringIO()
    run = Run(tmp_path, {"traced": TRACED}, config, tracer=out)
    lines = out.getvalue().splitlines()
    assert [tuple(line.split()[1:3]) for line in lines] == PHASE_ORDER[config]
    assert all(line.startswith("[trace] ") for line in lines)
    assert "raised RuntimeError: no driver" in out.getvalue()
    assert run.attributes["TRACED"] == "yes"
    if config == PREFERRED:  # every phase used what the one before decided
        facts = run.report.facts
        assert facts.image is not None and facts.image.uri == "/opt/traced/el9"
        assert facts.runtime is not None and [b.source for b in facts.binds] == ["/etc/hosts"]
        assert run.attributes["HAS_SINGULARITY"] == "True"


@pytest.mark.parametrize("value, traced", [("1", True), ("0", False), ("", False)])
def test_trace_env_var_prints_each_call_to_stderr(tmp_path, value, traced):
    site = tmp_path / "site"
    site.mkdir()
    (site / "traced.py").write_text(HEADER + TRACED)
    config = tmp_path / "entry.yaml"
    config.write_text(f"version: 1\ndefaults:\n  plugins: {{directories: [{site}]}}\n")
    work = make_work_dir(tmp_path / "work")
    proc = run_cli(["setup", "glidein_config", "entry", "--config", str(config)], work,
                   env={"GLIDEIN_PLUGINS_TRACE": value,
                        "GLIDEIN_PLUGINS_DISABLE": ",".join(OTHER_BUILTINS)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("[trace] ")]
    if traced:  # no GLIDEIN_Singularity_Use: DISABLE
        assert [tuple(line.split()[1:3]) for line in lines] == PHASE_ORDER[""]
    else:
        assert lines == []
    assert "TRACED yes" in (work / "glidein_config").read_text()


# -- the context --------------------------------------------------------------------------------


def test_context_runs_no_command_once_the_budget_is_spent(tmp_path):
    context = Context(EntryConfig("E"), glidein_config.parse(""), tmp_path, Deadline(0), {})
    marker = tmp_path / "ran"
    result = context.run(["touch", str(marker)])
    assert not result.ok and not marker.exists()
    assert result.reason == "touch: not run: setup time budget exhausted"
    assert [e.message for e in context.trace] == [f"command failed: {result.reason}"]
    live = Context(EntryConfig("E"), glidein_config.parse(""), tmp_path, Deadline(60), {})
    assert live.run(["touch", str(marker)]).ok and marker.exists()


def test_context_values_and_where_they_were_set(tmp_path):
    entry = EntryConfig("E", attributes={"FROM_YAML": Setting("y", "entry.yaml:7"),
                                         "BOTH": Setting("yaml", "entry.yaml:8")})
    context = Context(entry, glidein_config.parse("BOTH gc\nONLY_GC 1\n"), tmp_path,
                      Deadline(60), {})
    assert [context.get(key) for key in ("BOTH", "ONLY_GC", "FROM_YAML", "NONE")] == [
        "gc", "1", "y", None]
    assert [context.where(key) for key in ("BOTH", "FROM_YAML", "NONE")] == [
        "glidein_config:1", "entry.yaml:7", ""]


def test_work_phases_leave_a_share_of_the_budget_to_advertising():
    budget = Deadline(100)
    work = budget.share(0.9)
    assert work.start == budget.start and work.end == pytest.approx(budget.start + 90)
    assert 0 < work.remaining() < budget.remaining()
