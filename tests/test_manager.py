"""The plugin manager factory: built-ins, entry-point plugins of real (temporary) distributions,
site drop-ins, enable/disable/required, and broken plugins reported with their distribution."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest
from conftest import ROOT, make_work_dir, run_cli

from glidein_plugins.config.model import EntryConfig
from glidein_plugins.engine import manager
from glidein_plugins.engine.registry import BUILTINS
from glidein_plugins.engine.runner import Runner, SetupReport
from glidein_plugins.errors import FailureType
from glidein_plugins.protocol.glideinwms import glidein_config
from glidein_plugins.spec.context import Context, Deadline

SAMPLES = Path(__file__).parent / "plugins"
OTHER_BUILTINS = tuple(name for name in BUILTINS if name not in ("mode", "singularity"))

# the broken sample plugins, and what the report about each must say
BROKEN = {
    "broken_import": "failed to load: ModuleNotFoundError: No module named "
                     "'glidein_plugins_no_such_dependency'",
    "broken_raises": "failed to load: RuntimeError: sample plugin refuses to load on this node",
    "misspelt": "implements unknown hook 'glidein_runtime_discovr' "
                "(did you mean 'glidein_runtime_discover'?",
    "misspelt_unmarked": "implements unknown hook 'glidein_gpu_detec' "
                         "(did you mean 'glidein_gpu_detect'?",
    "wrapper": "glidein_attributes_contribute: hook wrappers are not supported",
    "wrong_arg": "failed to load: PluginValidationError: Plugin 'wrong_arg' for hook "
                 "'glidein_gpu_detect'",
}


def entry(**kwargs: Any) -> EntryConfig:
    return EntryConfig("TEST_ENTRY", **kwargs)


def setup(plugins: manager.Plugins) -> SetupReport:
    """A setup run over ``plugins`` (the mode negotiates to DISABLE: no runtime is looked for)."""
    context = Context(entry(), glidein_config.parse(""), Path.cwd(), Deadline(60), {})
    return Runner(plugins, context).setup()


def hook_plugins(plugins: manager.Plugins, hook: str) -> list[str]:
    """The plugins implementing ``hook``, in pluggy's call order."""
    impls = getattr(plugins.manager.hook, hook).get_hookimpls()
    return [impl.plugin_name for impl in reversed(impls)]


def problem(plugins: manager.Plugins, name: str) -> manager.LoadProblem:
    found = [p for p in plugins.problems if p.name == name]
    assert len(found) == 1, plugins.problems
    return found[0]


# -- a real distribution with entry points ------------------------------------------------------

Install = Callable[..., Path]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """``install(dist, version, {entry point name: sample plugin or 'module:attr' source})``
    makes an installed distribution (``NAME-VER.dist-info`` with METADATA and entry_points.txt,
    and its modules) in a directory put on ``sys.path``; importlib.metadata finds it there."""
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def make(dist: str, version: str, points: dict[str, str]) -> Path:
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = ["[glidein_plugins]"]
        for name, source in points.items():
            module = f"gp_test_{uuid.uuid4().hex[:12]}"  # unique: sys.modules outlives a test
            target, sep, attr = source.rpartition(":")  # 'source:Class' names a class
            if not sep or not attr.isidentifier():
                target, attr = source, ""
            sample = SAMPLES / f"{target}.py"
            text = sample.read_text() if sample.is_file() else target
            (site / f"{module}.py").write_text(text)
            modules.append(module)
            lines.append(f"{name} = {module}" + (f":{attr}" if attr else ""))
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        importlib.invalidate_caches()
        return site

    yield make
    for module in modules:
        sys.modules.pop(module, None)


# -- fresh managers, built-ins, blocking --------------------------------------------------------


def test_every_build_makes_a_fresh_manager(tmp_path):
    shutil.copy(SAMPLES / "sample_vo.py", tmp_path)
    config = entry(directories=(str(tmp_path),))
    first, second = manager.build(config, {}), manager.build(config, {})
    assert first.manager is not second.manager
    # a site module is executed again for each build: no state is carried between runs
    assert first.manager.get_plugin("sample_vo") is not second.manager.get_plugin("sample_vo")

    class Extra:
        @staticmethod
        def glidein_libraries_detect() -> list:
            return []

    first.manager.register(Extra(), name="extra")
    # the built-in gpus is registered in each build, and called last (trylast)
    assert hook_plugins(first, "glidein_libraries_detect") == ["extra", "gpus"]
    assert hook_plugins(second, "glidein_libraries_detect") == ["gpus"]
    assert manager.build(entry(), {}).manager.get_plugin("sample_vo") is None


@pytest.mark.parametrize("name", ["mode", "singularity"])
def test_builtins_are_registered_under_short_names(name):
    plugins = manager.build(entry(disable=OTHER_BUILTINS), {})
    module = importlib.import_module(f"glidein_plugins.builtin.{name}")
    assert plugins.manager.get_plugin(name) is module
    assert plugins.info[name] == manager.PluginInfo(name, "builtin", "glidein_plugins",
                                                    location=module.__name__)
    assert plugins.describe(name) == f"{name} (glidein_plugins)"
    assert plugins.problems == []


@pytest.mark.parametrize("disable, env, blocked", [
    (("singularity",), "", ("singularity",)),
    ((), "singularity", ("singularity",)),
    ((), "sample_vo, mode", ("sample_vo", "mode")),
    (("mode",), " singularity  sample_vo ", ("mode", "singularity", "sample_vo")),
])
def test_disable_list_and_env_var_block_plugins(tmp_path, disable, env, blocked):
    shutil.copy(SAMPLES / "sample_vo.py", tmp_path)
    plugins = manager.build(entry(disable=disable, directories=(str(tmp_path),)),
                            {manager.DISABLE_ENV: env})
    assert plugins.blocked == blocked
    for name in ("mode", "singularity", "sample_vo"):
        assert (plugins.manager.get_plugin(name) is None) == (name in blocked)
        assert plugins.manager.is_blocked(name) == (name in blocked)
    assert plugins.problems == []


def test_a_required_plugin_that_is_disabled_is_fatal():
    plugins = manager.build(entry(required=("singularity",)), {manager.DISABLE_ENV: "singularity"})
    assert [(p.name, p.fatal) for p in plugins.problems] == [("singularity", True)]
    failure = setup(plugins).failure
    assert failure is not None and failure.type is FailureType.CONFIG
    assert "plugin singularity" in failure.message and "required but disabled" in failure.message


# what an entry's naming of a plugin makes of a failure to load it: enabled or required, the
# setup fails (a VO's veto must never be skipped silently); optional (also when enabled), a
# warning
LISTINGS = {"enable": {"enable": True}, "required": {"required": True},
            "optional": {"optional": False},
            "enable+optional": {"enable": False, "optional": False}}


@pytest.mark.parametrize("listing", LISTINGS)
def test_an_unknown_plugin_name_is_a_problem(listing):
    fatal = all(LISTINGS[listing].values())
    plugins = manager.build(entry(**{key: ("no_such_plugin",) for key in LISTINGS[listing]}), {})
    found = problem(plugins, "no_such_plugin")
    assert found.fatal == fatal
    assert "unknown plugin" in found.message and "'glidein_plugins' entry point" in found.message
    failure = setup(plugins).failure
    if fatal:
        assert failure is not None and failure.type is FailureType.CONFIG
        assert "no_such_plugin" in failure.message
    else:
        assert failure is None


# -- entry points -------------------------------------------------------------------------------


def test_entry_point_plugins_are_found_with_their_distribution(install):
    install("vo-sample", "1.2.3", {"sample_vo": "sample_vo"})
    point, dist, version = manager.entry_points()["sample_vo"]
    assert (dist, version, point.group) == ("vo-sample", "1.2.3", "glidein_plugins")

    idle = manager.build(entry(disable=OTHER_BUILTINS), {})
    assert "sample_vo" not in idle.info  # installed is not enabled

    plugins = manager.build(entry(enable=("sample_vo",), disable=OTHER_BUILTINS), {})
    info = plugins.info["sample_vo"]
    assert (info.source, info.distribution, info.version) == ("entry point", "vo-sample", "1.2.3")
    assert plugins.describe("sample_vo") == "sample_vo (vo-sample 1.2.3)"
    attributes = {a.name: (a.value, a.plugin) for a in setup(plugins).attributes}
    assert attributes["SAMPLE_VO_READY"] == ("True", "sample_vo")


def test_a_class_entry_point_is_instantiated(install):
    source = ("from glidein_plugins import Attribute, hookimpl\n\n"
              "class VoPlugin:\n"
              "    @hookimpl\n"
              "    def glidein_attributes_contribute(self):\n"
              "        return [Attribute.integer('VO_CLASS_PLUGIN', 1)]\n")
    install("vo-class", "0.1", {"vo_class": f"{source}:VoPlugin"})
    plugins = manager.build(entry(enable=("vo_class",)), {})
    assert type(plugins.manager.get_plugin("vo_class")).__name__ == "VoPlugin"
    assert {a.name: a.value for a in setup(plugins).attributes}["VO_CLASS_PLUGIN"] == "1"


@pytest.mark.parametrize("listing", LISTINGS)
@pytest.mark.parametrize("name", BROKEN)
def test_a_broken_entry_point_plugin_is_reported_with_its_distribution(install, name, listing):
    install("vo-broken", "4.5", {name: name})
    required = all(LISTINGS[listing].values())
    plugins = manager.build(entry(disable=OTHER_BUILTINS,
                                  **{key: (name,) for key in LISTINGS[listing]}), {})
    found = problem(plugins, name)
    assert (found.distribution, found.fatal) == ("vo-broken", required)
    assert BROKEN[name] in found.message
    assert str(found).startswith(f"plugin {name} (vo-broken): ")
    assert plugins.manager.get_plugin(name) is None and name not in plugins.info
    plugins.manager.check_pending()  # nothing of it is left registered

    report = setup(plugins)
    if required:
        assert report.failure is not None and report.failure.type is FailureType.CONFIG
        assert f"plugin {name} (vo-broken)" in report.failure.message
    else:
        assert report.failure is None
        assert any(e.plugin == name and "(vo-broken)" in e.message and e.level == "warning"
                   for e in report.trace)


def test_a_crash_at_run_time_names_the_distribution(install):
    install("vo-crash", "2.0", {"crashy": "from glidein_plugins import hookimpl\n\n"
                                          "@hookimpl\n"
                                          "def glidein_gpu_detect():\n"
                                          "    raise OSError('nvml gone')\n"})
    report = setup(manager.build(entry(enable=("crashy",), disable=OTHER_BUILTINS), {}))
    assert report.failure is None
    assert [e.message for e in report.trace if e.level == "error"] == [
        "plugin crashy (vo-crash 2.0) in glidein_gpu_detect: raised OSError: nvml gone"]


def test_a_distribution_with_unreadable_metadata_hides_no_other_plugin(install):
    site = install("vo-sample", "1.2.3", {"sample_vo": "sample_vo"})
    bad = site / "vo_garbled-1.0.dist-info"
    bad.mkdir()
    (bad / "METADATA").write_text("Metadata-Version: 2.1\nName: vo-garbled\nVersion: 1.0\n")
    (bad / "entry_points.txt").write_text("[glidein_plugins]\nthis line is not an entry point\n")
    plugins = manager.build(entry(enable=("sample_vo",)), {})
    assert plugins.info["sample_vo"].distribution == "vo-sample"
    [garbled] = [p for p in plugins.problems if "vo_garbled-1.0.dist-info" in p.name]
    assert "unreadable distribution metadata" in garbled.message and not garbled.fatal


def test_an_installed_plugin_works_in_a_real_glidein_setup(install, tmp_path):
    site = install("vo-sample", "1.2.3", {"sample_vo": "sample_vo"})
    config = tmp_path / "entry.yaml"
    config.write_text("version: 1\nentries:\n  TEST_ENTRY:\n    plugins: {required: [sample_vo]}\n"
                      "    settings: {sample_vo: {site: T2_Test}}\n")
    work = make_work_dir(tmp_path / "work")
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    listing = run_cli(["plugins", "--entry", "TEST_ENTRY", "--config", str(config)], work, env)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert "vo-sample" in listing.stdout
    proc = run_cli(["setup", "glidein_config", "entry", "--config", str(config)], work, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    values = glidein_config.read(work / "glidein_config")
    assert (values.get("SAMPLE_VO_READY"), values.get("SAMPLE_VO_SITE")) == ("True", "T2_Test")
    rows = (work / "condor_vars.lst").read_text().splitlines()
    assert [row.split()[:2] for row in rows if row.startswith("SAMPLE_VO_")] == [
        ["SAMPLE_VO_READY", "C"], ["SAMPLE_VO_SITE", "S"]]


# -- site drop-ins ------------------------------------------------------------------------------


def test_site_directories_load_every_module(tmp_path):
    (tmp_path / "_private.py").write_text("raise RuntimeError('never imported')\n")
    (tmp_path / "notes.txt").write_text("not a plugin\n")
    (tmp_path / "mode.py").write_text("raise RuntimeError('never imported')\n")
    missing = tmp_path / "no-such-dir"
    plugins = manager.build(entry(disable=OTHER_BUILTINS,
                                  directories=(str(SAMPLES), str(tmp_path), str(missing))), {})
    assert plugins.info["sample_vo"] == manager.PluginInfo(
        "sample_vo", "directory", "site", location=str(SAMPLES / "sample_vo.py"))
    assert set(BROKEN) <= {p.name for p in plugins.problems}
    for name, message in BROKEN.items():
        found = problem(plugins, name)
        assert (found.distribution, found.fatal) == ("site", False)
        assert message in found.message
    assert "is a built-in plugin's name" in problem(plugins, "mode").message
    assert plugins.info["mode"].source == "builtin"
    assert f"plugin directory {missing} does not exist" in problem(plugins, missing.name).message
    assert not any(p.fatal for p in plugins.problems)
    report = setup(plugins)
    assert report.failure is None
    assert "SAMPLE_VO_READY" in {a.name for a in report.attributes}


def test_a_skipped_plugin_leaves_none_of_its_hooks_behind():
    """pluggy registers hooks in name order and stops at the first bad one; the good hooks
    registered before it must be removed with the plugin."""
    plugins = manager.build(entry(disable=OTHER_BUILTINS, directories=(str(SAMPLES),)), {})
    assert "wrong_arg" not in hook_plugins(plugins, "glidein_attributes_contribute")
    assert "WRONG_ARG_LOADED" not in {a.name for a in setup(plugins).attributes}


@pytest.mark.parametrize("sample", ["misspelt", "misspelt_unmarked"])
def test_check_pending_catches_misspelt_hooks_marked_or_not(sample, tmp_path):
    plugins = manager.build(entry(), {})
    plugins.manager.check_pending()
    spec = importlib.util.spec_from_file_location(f"gp_{sample}", SAMPLES / f"{sample}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugins.manager.register(module, name=sample)
    with pytest.raises(pluggy.PluginValidationError, match="unknown hook"):
        plugins.manager.check_pending()


def test_unmarked_glidein_functions_are_implementations(tmp_path):
    (tmp_path / "unmarked.py").write_text(
        "from glidein_plugins import Attribute\n\n"
        "def glidein_attributes_contribute():\n"
        "    return [Attribute.string('UNMARKED', 'yes')]\n\n"
        "def helper_not_a_hook():\n"
        "    raise AssertionError('never called')\n")
    plugins = manager.build(entry(disable=OTHER_BUILTINS, directories=(str(tmp_path),)), {})
    assert plugins.problems == []
    assert {a.name: a.value for a in setup(plugins).attributes}["UNMARKED"] == "yes"


def test_required_changes_what_a_failure_means_not_the_call_order(tmp_path):
    for name in ("a_first", "b_second"):
        (tmp_path / f"{name}.py").write_text(
            "from glidein_plugins import Library, hookimpl\n\n"
            "@hookimpl\n"
            f"def glidein_libraries_detect():\n    return [Library({name!r})]\n")
    orders = [hook_plugins(manager.build(entry(directories=(str(tmp_path),), required=req), {}),
                           "glidein_libraries_detect")
              for req in ((), ("a_first",), ("b_second",), ("b_second", "a_first"))]
    assert orders == [["b_second", "a_first", "gpus"]] * 4  # the built-in: trylast


# -- drop-ins that someone else could change (SECURITY.md, threat 3) -----------------------------

NOBODY = 65534
ATTRIBUTE_PLUGIN = ("from glidein_plugins import Attribute\n\n"
                    "def glidein_attributes_contribute():\n"
                    "    return [{}]\n")


def drop_in(directory: Path, name: str = "site_vo", attribute: str = "Attribute.string("
            "'SITE_VO_READY', 'yes')") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(ATTRIBUTE_PLUGIN.format(attribute))
    return path


def as_nobody(path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    os.chown(path, NOBODY, NOBODY)


def linked_file(directory: Path) -> None:
    """``site_vo.py`` a symlink to a private file in a world-writable directory."""
    (directory / "site_vo.py").unlink()
    target = drop_in(directory.parent / "shared")
    (directory / "site_vo.py").symlink_to(target)
    target.parent.chmod(0o777)


def linked_directory(directory: Path) -> None:
    """The configured directory a symlink to a world-writable one."""
    real = directory.parent / "real"
    directory.rename(real)
    directory.symlink_to(real)
    real.chmod(0o777)


# each case makes <tmp>/outer/plugins/site_vo.py unsafe, and says what the problem names
UNSAFE: dict[str, tuple[Callable[[Path], object], str]] = {
    "world-writable directory": (lambda d: d.chmod(0o777),
                                 "plugins is writable by its group and others (mode 0777)"),
    "group-writable directory": (lambda d: d.chmod(0o775),
                                 "plugins is writable by its group (mode 0775)"),
    "sticky world-writable directory": (lambda d: d.chmod(0o1777), "(mode 1777)"),
    "world-writable file": (lambda d: (d / "site_vo.py").chmod(0o646),
                            "site_vo.py is writable by others (mode 0646)"),
    "file of another user": (lambda d: as_nobody(d / "site_vo.py"),
                             f"site_vo.py is owned by uid {NOBODY}, neither root nor this user"),
    "directory of another user": (as_nobody, f"plugins is owned by uid {NOBODY}"),
    "world-writable parent": (lambda d: d.parent.chmod(0o777),
                              "outer is writable by its group and others (mode 0777) without "
                              "the sticky bit: they could replace"),
    "file linked from a world-writable directory": (
        linked_file, "shared is writable by its group and others (mode 0777)"),
    "link to a world-writable directory": (
        linked_directory, "real is writable by its group and others (mode 0777)"),
}


def make_unsafe(tmp_path: Path, case: str) -> tuple[Path, str]:
    directory = tmp_path / "outer" / "plugins"
    drop_in(directory)
    make, message = UNSAFE[case]
    make(directory)
    return directory, message


@pytest.mark.parametrize("case", UNSAFE)
@pytest.mark.parametrize("required", [False, True], ids=["enabled", "required"])
def test_a_drop_in_someone_else_could_change_is_not_loaded(tmp_path, case, required):
    sys.modules.pop("glidein_plugins_site_site_vo", None)  # another test may have loaded one
    directory, message = make_unsafe(tmp_path, case)
    plugins = manager.build(entry(disable=OTHER_BUILTINS, directories=(str(directory),),
                                  required=("site_vo",) if required else ()), {})
    found = problem(plugins, "site_vo")
    assert (found.distribution, found.fatal) == ("site", required)
    assert found.message.startswith(f"{directory / 'site_vo.py'} not loaded: "), found.message
    assert message in found.message
    assert "site_vo" not in plugins.info
    assert "glidein_plugins_site_site_vo" not in sys.modules  # never imported
    report = setup(plugins)
    if required:
        assert report.failure is not None and report.failure.type is FailureType.CONFIG
        assert message in report.failure.message
    else:
        assert report.failure is None
        assert "SITE_VO_READY" not in {a.name for a in report.attributes}


@pytest.mark.parametrize("link", [False, True], ids=["directory", "symlinked directory"])
def test_a_private_drop_in_loads_under_a_sticky_parent(tmp_path, link):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: others may add files, never replace ours
    directory = shared / "plugins"
    drop_in(directory)
    if link:
        (tmp_path / "link").symlink_to(directory)
        directory = tmp_path / "link"
    plugins = manager.build(entry(disable=OTHER_BUILTINS, directories=(str(directory),)), {})
    assert plugins.problems == []
    assert {a.name for a in setup(plugins).attributes} >= {"SITE_VO_READY"}


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """``mount(source)``: ``source`` bound read-only at a new path (needs root and a kernel
    that lets this test mount: else a skip), unmounted at the end."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only mount needs root and mount")
    mounted: list[Path] = []

    def mount(source: Path) -> Path:
        target = tmp_path / f"ro{len(mounted)}"
        target.mkdir()
        for argv in (["mount", "--bind", str(source), str(target)],
                     ["mount", "-o", "remount,ro,bind", str(target)]):
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            if proc.returncode != 0:
                pytest.skip(f"cannot make a read-only mount here: {proc.stderr.strip()}")
            if "--bind" in argv:
                mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", str(target)], capture_output=True, timeout=30)


def test_a_read_only_mount_is_trusted_whoever_owns_it(tmp_path, read_only_mount):
    """CVMFS shows its files as its own user's: on a read-only mount nobody can change them."""
    source = tmp_path / "cvmfs_like"
    drop_in(source)
    for path in (source, source / "site_vo.py"):
        path.chmod(0o777)
        os.chown(path, NOBODY, NOBODY)
    assert "owned by uid" in manager.unsafe(source / "site_vo.py")
    directory = read_only_mount(source)
    plugins = manager.build(entry(disable=OTHER_BUILTINS, directories=(str(directory),)), {})
    assert plugins.problems == []
    assert "SITE_VO_READY" in {a.name for a in setup(plugins).attributes}


# -- attributes a plugin may not publish (SECURITY.md, threat 4) ---------------------------------

@pytest.mark.parametrize("name, rule", [
    ("START", "an HTCondor startd policy expression"),
    ("USER_JOB_WRAPPER", "an HTCondor setting of how jobs run"),
    ("SEC_DEFAULT_AUTHENTICATION", "an HTCondor security setting"),
    ("Allow_Write", "an HTCondor security setting"),  # HTCondor ignores case
    ("CONDOR_VARS_FILE", "a glidein_config key GlideinWMS relies on"),
    ("CONDOR_DIR", "an HTCondor path, host or configuration file"),
])
@pytest.mark.parametrize("required", [False, True], ids=["enabled", "required"])
def test_a_plugin_publishing_a_reserved_name_is_refused_naming_it(tmp_path, name, rule,
                                                                  required):
    drop_in(tmp_path, "knobs", f"Attribute.string('SITE_VO_READY', 'yes'), "
                               f"Attribute.expr({name!r}, 'True')")
    plugins = manager.build(entry(disable=OTHER_BUILTINS, directories=(str(tmp_path),),
                                  required=("knobs",) if required else ()), {})
    report = setup(plugins)
    errors = [event.message for event in report.trace if event.level == "error"]
    expected = (f"plugin knobs (site) in glidein_attributes_contribute: attribute {name} is "
                f"reserved: {rule} (")
    assert any(message.startswith(expected) for message in errors), errors
    if required:
        assert report.failure is not None and report.failure.type is FailureType.CONFIG
        assert report.failure.message.startswith(expected)
    else:  # the plugin's whole contribution is dropped, as for any wrong result
        assert report.failure is None
        assert not {"SITE_VO_READY", name} & {a.name for a in report.attributes}


def test_a_reserved_name_never_reaches_glidein_config_or_condor_vars(tmp_path):
    plugins = tmp_path / "plugins"
    drop_in(plugins, "knobs", "Attribute.expr('START', 'False'), "
                              "Attribute.string('ADD_CONFIG_LINE_SOURCE', '/tmp/evil.sh')")
    config = tmp_path / "entry.yaml"
    config.write_text(f"version: 1\ndefaults:\n  plugins: {{directories: [{plugins}]}}\n")
    source = str(tmp_path / "work" / "add_config_line.source")
    work = make_work_dir(tmp_path / "work", {"ADD_CONFIG_LINE_SOURCE": source})
    proc = run_cli(["setup", "glidein_config", "entry", "--config", str(config)], work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "attribute START is reserved" in proc.stdout + proc.stderr
    assert glidein_config.read(work / "glidein_config").get("ADD_CONFIG_LINE_SOURCE") == source
    rows = (work / "condor_vars.lst").read_text().split()
    assert "START" not in rows and "ADD_CONFIG_LINE_SOURCE" not in rows
