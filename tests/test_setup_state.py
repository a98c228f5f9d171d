"""The setup state (``glidein_plugins.jobstart.setup_state``): what a real ``glidein-plugins
setup`` on a
node with a fake runtime and a fake CVMFS leaves for job start, how it is advertised, and how a
broken state file is reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    IS_PYPY,
    ROOT,
    FakeCvmfs,
    glidein_result,
    make_work_dir,
    run_cli,
    startd_values,
)

import glidein_plugins
from glidein_plugins.errors import InputError
from glidein_plugins.jobstart import setup_state
from glidein_plugins.jobstart.records import (
    BindState,
    ImageState,
    ModeState,
    RuntimeState,
    SetupState,
)
from glidein_plugins.protocol.htcondor.job_ad import Ad
from glidein_plugins.spec import results

VO_LAUNCH = '''\
def glidein_job_launch(job):
    return None
'''


def factory_config(tmp_path: Path, launch: str, plugin_dir: Path | None = None) -> Path:
    config = tmp_path / "factory.yaml"
    directories = f"    directories: [{json.dumps(str(plugin_dir))}]\n" if plugin_dir else ""
    config.write_text("version: 1\ndefaults:\n"
                      + (f"  plugins:\n{directories}" if directories else "")
                      + f"  settings:\n    launch: {launch}\n")
    return config


def setup(tmp_path: Path, fake_cvmfs: FakeCvmfs, frontend: str, config: Path | None = None,
          **values: str):
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": frontend, **values})
    args = ["setup", "glidein_config", "entry", *(["--config", str(config)] if config else [])]
    return work, glidein_result(run_cli(args, work, fake_cvmfs.env()), work)


def test_a_setup_keeps_what_job_start_needs_and_advertises_where(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, classad2) -> None:
    binary = fake_cvmfs.bin.install_runtime("apptainer", mode="unprivileged")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "vo_launch.py").write_text(VO_LAUNCH)
    config = factory_config(tmp_path, '{failure_delay: 0, extra_options: ["--no-eval"]}',
                            plugins)
    work, result = setup(tmp_path, fake_cvmfs, "PREFERRED", config,
                         GLIDEIN_REQUIRED_OS="rhel8,rhel9",
                         GLIDEIN_CONTAINER_ENV="clearall",
                         SINGULARITY_IMAGE_RESTRICTIONS="cvmfs,remote")
    assert result.exit_code == 0, result.stdout
    path = work / ".glidein_plugins" / "setup_state.json"
    # advertised as a string, exported into every job's environment (JobEnv '+')
    assert result.config["GLIDEIN_PLUGINS_STATE"] == str(path)
    assert result.condor_vars["GLIDEIN_PLUGINS_STATE"] == "GLIDEIN_PLUGINS_STATE S - + N Y +"
    assert startd_values(result, classad2)["GLIDEIN_PLUGINS_STATE"] == str(path)
    # the wrapper finds the package and this Python through these, even when concatenated
    assert Path(result.config["GLIDEIN_PLUGINS_DIR"], "glidein_plugins", "__init__.py").is_file()
    assert os.access(result.config["GLIDEIN_PLUGINS_PYTHON"], os.X_OK)
    for name in ("GLIDEIN_PLUGINS_DIR", "GLIDEIN_PLUGINS_PYTHON"):
        assert result.condor_vars[name] == f"{name} S - + N Y +"
    # beside it, for the job wrapper (a shell): the Python and the package setup ran with
    decision = shell_values(path.parent / setup_state.DECISION)
    assert decision["_gp_decision"] == "container" and decision["_gp_state"] == str(path)
    assert os.access(decision["_gp_python"], os.X_OK)
    assert Path(decision["_gp_dir"], "glidein_plugins", "__init__.py").is_file()
    raw = json.loads(path.read_text())
    assert raw["version"] == 1 and raw["restrictions"] == {
        "names": ["cvmfs", "remote"], "cvmfs_root": str(fake_cvmfs.root)}
    state = setup_state.load(path)
    assert (state.entry, state.work_dir, state.mode.outcome) == ("TEST_ENTRY", str(work),
                                                                 "PREFERRED")
    assert state.has_singularity and state.reason == "" and state.wants_container
    runtime = state.runtime
    assert runtime is not None and runtime.path == str(binary)
    assert (runtime.version, runtime.flavour, runtime.privilege) == ("1.3.4", "apptainer",
                                                                     "unprivileged")
    assert runtime.feature("pid_namespaces") and runtime.feature("contain")
    assert not runtime.feature("nested")
    images = {image.platform: image.uri for image in state.images}
    assert images == {key: str(image) for key, image in fake_cvmfs.images.items()}
    assert state.default_image == ImageState("rhel8", str(fake_cvmfs.images["rhel8"]),
                                             state.default_image.source)
    assert BindState(str(fake_cvmfs.root), "/cvmfs", "", state.binds[-1].origin) in state.binds
    assert state.launch["failure_delay"] == 0 and state.launch["extra_options"] == ["--no-eval"]
    assert state.launch["pid_namespaces"] is True  # the defaults under what the entry set
    assert state.tmp_dir == str(work / "tmp")
    assert all((work / "tmp" / "apptainer" / sub).is_dir() for sub in ("cache", "tmp"))
    assert (state.required_os, state.container_env) == ("rhel8,rhel9", "clearall")
    assert state.restrictions == ("cvmfs", "remote")
    assert state.job_hooks == ("vo_launch",)  # the built-in launch is not listed
    assert state.gpus == () and state.cvmfs_root == str(fake_cvmfs.root)
    # what plugins receive at job start
    facts = state.facts()
    assert isinstance(facts, results.Facts) and facts.has_singularity
    assert facts.runtime is not None and facts.runtime.candidate.path == str(binary)
    assert facts.image is not None and facts.image.platform == "rhel8"


@pytest.mark.parametrize("frontend", ["NEVER", "DISABLE_GWMS"])
def test_without_containers_the_decision_is_bare(tmp_path: Path, fake_cvmfs: FakeCvmfs,
                                                 frontend: str) -> None:
    """Changed (issue 13): setup records its decision in every mode; the wrapper finds it
    beside condor_job_wrapper.sh (what is advertised stays the reference's)."""
    fake_cvmfs.bin.install_runtime("apptainer")
    work, result = setup(tmp_path, fake_cvmfs, frontend)
    assert result.exit_code == 0, result.stdout
    path = work / ".glidein_plugins" / "setup_state.json"
    assert setup_state.load(path).decision == "bare"
    assert shell_values(path.with_name(setup_state.DECISION))["_gp_decision"] == "bare"
    assert "GLIDEIN_PLUGINS_STATE" not in result.config  # published: the reference's only


def test_a_failed_setup_leaves_no_decision(tmp_path: Path, fake_cvmfs: FakeCvmfs) -> None:
    fake_cvmfs.bin.install_runtime("apptainer")
    work, result = setup(tmp_path, fake_cvmfs, "NEVER")
    decision = work / ".glidein_plugins" / setup_state.DECISION
    assert result.exit_code == 0 and decision.exists()
    with (work / "glidein_config").open("a") as config:  # the same glidein: a bad mode
        config.write("GLIDEIN_Singularity_Use SOMETIMES\n")
    again = glidein_result(run_cli(["setup", "glidein_config", "entry"], work,
                                   fake_cvmfs.env()), work)
    assert again.exit_code == 1
    assert not decision.exists()  # the wrapper then fails every job


def shell_values(path: Path) -> dict[str, str]:
    """The assignments of the decision file, as a POSIX shell reads them."""
    out = subprocess.run(["sh", "-c", '. "$1"; printf "%s\\0" "$_gp_decision" "$_gp_state" '
                          '"$_gp_python" "$_gp_dir"', "sh", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return dict(zip(("_gp_decision", "_gp_state", "_gp_python", "_gp_dir"),
                    out.split("\0")))


def test_preferred_without_a_runtime_keeps_why(tmp_path: Path, fake_cvmfs: FakeCvmfs) -> None:
    _, result = setup(tmp_path, fake_cvmfs, "PREFERRED",
                      GLIDEIN_SINGULARITY_BINARY_OVERRIDE=str(tmp_path / "nothing"))
    assert result.exit_code == 0, result.stdout
    state = setup_state.load(result.config["GLIDEIN_PLUGINS_STATE"])
    assert state.runtime is None and not state.has_singularity
    assert state.reason.startswith("no working container runtime among")


@pytest.mark.parametrize(("launch", "why"), [
    ("{failure_delay: -1}", "settings.launch.failure_delay: expected a number of seconds"),
    ("{extra_options: --nv}", "settings.launch.extra_options: expected a list of runtime"),
    ("{pid_namespace: false}", "settings.launch.pid_namespace: unknown setting"),
])
def test_a_wrong_launch_setting_stops_the_glidein_naming_where(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, launch: str, why: str) -> None:
    fake_cvmfs.bin.install_runtime("apptainer")
    config = factory_config(tmp_path, launch)
    work, result = setup(tmp_path, fake_cvmfs, "PREFERRED", config)
    assert (result.exit_code, result.failure) == (1, "Config")
    assert f"{config}:4: {why}" in result.detail
    assert "GLIDEIN_PLUGINS_STATE" not in result.config
    assert not (work / ".glidein_plugins" / "setup_state.json").exists()


def sample_state(runtime: bool = True) -> SetupState:
    return SetupState(
        entry="E", work_dir="/glide/work dir", mode=ModeState("REQUIRED", "REQUIRED", "OPTIONAL",
                                                             "why"),
        has_singularity=runtime, reason="" if runtime else "none",
        runtime=RuntimeState("/usr/bin/apptainer", source="PATH", version="1.3.4",
                             features={"contain": True, "pid_namespaces": False},
                             reasons={"pid_namespaces": "Docker"}) if runtime else None,
        images=[ImageState("rhel9", "/cvmfs/img 9", "dict")],
        default_image=ImageState("rhel9", "/cvmfs/img 9", "dict"),
        binds=[BindState("/cvmfs"), BindState("/a", "/b", "ro", "frontend")],
        gpus=[{"vendor": "nvidia", "name": "H100", "uuid": "GPU-1"}],
        libraries=[{"name": "cuda", "version": "12.4"}],
        launch={"failure_delay": 0, "extra_options": ["-e"]}, tmp_dir="/glide/tmp",
        required_os="rhel9", restrictions=["cvmfs"], container_env="keepall",
        container_env_clearlist="A,B", job_hooks=["vo"])


@pytest.mark.parametrize("runtime", [True, False])
def test_save_and_load_give_the_same_state(tmp_path: Path, runtime: bool) -> None:
    path = tmp_path / "deep" / "state.json"
    state = sample_state(runtime)
    setup_state.save(path, state)
    # no temporary left; the interpreter and package for the wrapper beside the state
    assert sorted(item.name for item in path.parent.iterdir()) == [setup_state.DECISION,
                                                                   "state.json"]
    package_dir = Path(os.path.abspath(glidein_plugins.__file__)).parent.parent  # checkout, venv
    assert shell_values(path.parent / setup_state.DECISION) == {
        "_gp_decision": state.decision, "_gp_state": str(path),
        "_gp_python": sys.executable, "_gp_dir": str(package_dir)}
    assert setup_state.load(path) == state
    assert setup_state.load(path).to_json() == json.loads(path.read_text()) == state.to_json()
    facts = state.facts()
    assert facts.gpus == (results.GpuDevice("nvidia", "H100", "GPU-1"),)
    assert facts.binds[1] == results.Bind("/a", "/b", "ro", "frontend")
    assert (facts.runtime is not None) is runtime


def test_states_are_read_only() -> None:
    state = sample_state()
    with pytest.raises(AttributeError):
        state.entry = "other"  # type: ignore[misc]
    assert state != sample_state(runtime=False) and hash(state) == hash(sample_state())


def _edit(data: dict, change) -> str:
    change(data)
    return json.dumps(data)


@pytest.mark.parametrize(("content", "where", "why"), [
    (lambda good: good[:-20], ":", "the setup state is not valid JSON"),
    (lambda good: good.replace('"version": 1', '"version": 1,'), ":", "not valid JSON"),
    (lambda good: "[]", "", "'(top level)': expected an object, found an array"),
    (lambda good: _edit(json.loads(good), lambda d: d.update(version=2)), "",
     "'version': 2 is not 1: written by another version"),
    (lambda good: _edit(json.loads(good), lambda d: d.pop("tmp_dir")), "",
     "'tmp_dir': missing"),
    (lambda good: _edit(json.loads(good), lambda d: d["images"][0].update(uri=7)), "",
     "'images[0].uri': expected a string, found an integer"),
    (lambda good: _edit(json.loads(good), lambda d: d["runtime"]["features"].update(pid="y")),
     "", "'runtime.features.pid': expected true or false, found a string"),
    (lambda good: _edit(json.loads(good), lambda d: d.update(job_hooks=[None])), "",
     "'job_hooks[0]': expected a string, found null"),
    (lambda good: good.replace('"failure_delay": 0', '"failure_delay": NaN'), ":",
     "NaN is not allowed"),
    (lambda good: good + "{}", ":", "extra data"),
    (lambda good: " ", ":1", "the setup state is not valid JSON"),
])
def test_a_broken_state_file_is_a_clear_error(tmp_path: Path, content, where: str,
                                              why: str) -> None:
    path = tmp_path / "setup_state.json"
    setup_state.save(path, sample_state())
    path.write_text(content(path.read_text()))
    with pytest.raises(InputError) as error:
        setup_state.load(path)
    assert error.value.where.startswith(f"{path}{where}")
    assert why in error.value.message


def test_a_missing_state_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as error:
        setup_state.load(tmp_path / "none.json")
    assert (error.value.where, error.value.message) == (
        str(tmp_path / "none.json"), "cannot read the setup state: No such file or directory")


@pytest.mark.parametrize(("machine_ad", "found"), [
    ({"GLIDEIN_PLUGINS_STATE": '"/b/state.json"'}, "/b/state.json"),
    ({"glidein_plugins_state": '"/b/state.json"'}, "/b/state.json"),
    ({"GLIDEIN_PLUGINS_STATE": "undefined"}, ""),
    ({}, ""),
    (None, ""),
])
def test_locate_reads_the_machine_ad_alone(machine_ad, found: str) -> None:
    """Never the environment: at job start it is the job's (test_security.py)."""
    ad = None if machine_ad is None else Ad(machine_ad)
    assert setup_state.locate(ad) == found
    if machine_ad is not None:  # a plain mapping of attribute to expression text too
        assert setup_state.locate(dict(machine_ad)) == (
            found if "GLIDEIN_PLUGINS_STATE" in machine_ad else "")


@pytest.mark.skipif(IS_PYPY, reason="PyPy reads JSON with its own fast json module")
def test_loading_the_state_imports_only_the_standard_library_core(tmp_path: Path) -> None:
    """On the per-job path: no json (re), no dataclasses, typing, enum, pluggy or YAML."""
    path = tmp_path / "state.json"
    setup_state.save(path, sample_state())
    code = ("import sys; from glidein_plugins.jobstart import setup_state; "
            f"assert setup_state.load({str(path)!r}).entry == 'E'; "
            "print(' '.join(sorted(set(sys.modules) & {'re', 'json', 'dataclasses', 'typing', "
            "'enum', 'pluggy', 'yaml', 'glidein_plugins.spec.results', "
            "'glidein_plugins.errors'})))")
    proc = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []
