"""HTCondor-native container mode: ``glidein-plugins setup`` (a real process, fake runtime, fake
CVMFS mounted elsewhere than /cvmfs) on an entry whose ``launch`` setting says ``native: true``,
judged the way HTCondor sees it: the glidein's condor_config is built from glidein_config and
condor_vars.lst as ``condor_startup.sh`` builds it, read back by HTCondor's own config reader
(``htcondor2``), and the knobs' expressions are evaluated by ``classad2`` against job and slot
ads as the starter evaluates them (MY = the slot, TARGET = the job)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    IS_PYPY,
    ROOT,
    FakeBin,
    FakeCvmfs,
    GlideinResult,
    gconfig_values,
    glidein_result,
    make_work_dir,
    run_cli,
    startd_values,
)

from glidein_plugins.jobstart import native
from glidein_plugins.spec.results import (
    Facts,
    GpuDevice,
    Image,
    Mode,
    ModeDecision,
    RuntimeCandidate,
    RuntimeProbe,
)

KNOB_LINE = "{} C - + N N -"  # in condor_config, never in the machine ad or the job's env
PARAM_READER = ROOT / "tests" / "_proto_condor_param.py"
STRING_KNOBS = ("SINGULARITY_IMAGE_EXPR", "SINGULARITY_BIND_EXPR", "SINGULARITY_EXTRA_ARGUMENTS")
EL9 = "singularity.opensciencegrid.org/opensciencegrid/osgvo-el9:latest"


# ---------------------------------------------------------------------------------------------
# what condor_startup.sh makes of glidein_config + condor_vars.lst, read by HTCondor
# ---------------------------------------------------------------------------------------------

def startd_config(work: Path) -> list[str]:
    """The lines ``condor_startup.sh``'s ``set_var`` appends to condor_config: for every
    condor_vars line, ``NAME=value`` with the value from glidein_config (else the default;
    nothing when there is neither), a type S value wrapped in double quotes verbatim."""
    config = gconfig_values(work / "glidein_config")
    lines = []
    for row in Path(config["CONDOR_VARS_FILE"]).read_text().splitlines():
        if not row.strip() or row.startswith("#"):
            continue
        name, kind, default, condor_name, *_ = row.split()
        value = config.get(name, "") or ("" if default == "-" else default)
        if value:
            lines.append(f"{name if condor_name == '+' else condor_name}="
                         + (f'"{value}"' if kind == "S" else value))
    return lines


def condor_params(work: Path) -> dict[str, str | None]:
    """Every knob as HTCondor's config reader sees it in that condor_config (raw text, read
    through a macro ``RAW_X = $(X)``: the reader evaluates the names it knows to be booleans)."""
    path = work / "condor_config"
    path.write_text("".join(f"{line}\n" for line in [*startd_config(work), *(
        f"RAW_{name} = $({name})" for name in native.KNOBS)]))
    proc = subprocess.run([sys.executable, str(PARAM_READER),
                           *(f"RAW_{name}" for name in native.KNOBS)],
                          env={"CONDOR_CONFIG": str(path), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return {key[len("RAW_"):]: value for key, value in json.loads(proc.stdout).items()}


def evaluate(classad2, expression: str, job: dict[str, object],
             slot: dict[str, object] | None = None) -> object:
    """``expression`` as the starter evaluates it: MY = the slot ad, TARGET = the job ad."""
    return classad2.ExprTree(expression).eval(classad2.ClassAd(slot or {}),
                                              classad2.ClassAd(job))


def is_error(classad2, value: object) -> bool:
    return isinstance(value, classad2.Value) and value == classad2.Value.Error


# ---------------------------------------------------------------------------------------------
# a node, an entry, a setup
# ---------------------------------------------------------------------------------------------

def setup(base: Path, fakes: FakeCvmfs | FakeBin, frontend: str = "PREFERRED",
          launch: str = "{native: true}", env: dict[str, str] | None = None,
          **values: str) -> GlideinResult:
    """``glidein-plugins setup`` in ``base/work`` (made on first use, kept on reruns) for an
    entry whose ``launch`` settings are ``launch`` (YAML)."""
    cvmfs = fakes if isinstance(fakes, FakeCvmfs) else None
    work = base / "work"
    if not work.exists():
        images = {"SINGULARITY_IMAGES_DICT": cvmfs.images_dict()} if cvmfs else {}
        make_work_dir(work, {"GLIDEIN_Singularity_Use": frontend, **images, **values})
    config = base / "native.yaml"
    config.write_text("version: 1\nentries:\n  TEST_ENTRY:\n    settings:\n"
                      f"      launch: {launch}\n")
    proc = run_cli(["setup", "glidein_config", "entry", "--config", str(config)], work,
                   fakes.env(**(env or {})))
    return glidein_result(proc, work)


def fake_node(base: Path) -> FakeCvmfs:
    """A node with a working fake Apptainer and CVMFS (``rhel9`` only) under ``base/cvmfs``
    (the fixtures of conftest are per test; this one serves a module)."""
    (base / "bin").mkdir()
    fakes = FakeBin(base / "bin", base / "fake_runtime.log")
    fakes.install_runtime("apptainer")
    image = base / "cvmfs" / EL9
    for sub in ("srv", "etc", "cvmfs", "tmp", "bin", "usr"):
        (image / sub).mkdir(parents=True)
    return FakeCvmfs(base / "cvmfs", {"rhel9": image}, fakes)


def launch_of(result: GlideinResult, classad2) -> object:
    return startd_values(result, classad2).get(native.LAUNCH_ATTRIBUTE)


@pytest.fixture(scope="module")
def native_node(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GlideinResult]:
    """A PREFERRED setup in native mode, shared by the tests that only read its results."""
    base = tmp_path_factory.mktemp("native")
    return base, setup(base, fake_node(base), launch="{native: true, extra_options: [--compat]}")


@pytest.fixture(scope="module")
def knobs(native_node: tuple[Path, GlideinResult]) -> dict[str, str | None]:
    if IS_PYPY:
        pytest.skip("HTCondor's bindings have no PyPy build")
    return condor_params(native_node[0] / "work")


@pytest.fixture(scope="module")
def job_expressions(native_node: tuple[Path, GlideinResult],
                    tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    """``SINGULARITY_JOB`` for each mode that runs containers."""
    if IS_PYPY:
        pytest.skip("HTCondor's bindings have no PyPy build")
    base = tmp_path_factory.mktemp("required")
    assert setup(base, fake_node(base), "REQUIRED").exit_code == 0
    return {"PREFERRED": condor_params(native_node[0] / "work")["SINGULARITY_JOB"],
            "REQUIRED": condor_params(base / "work")["SINGULARITY_JOB"]}


# ---------------------------------------------------------------------------------------------
# the knobs, as HTCondor reads them
# ---------------------------------------------------------------------------------------------

def test_native_mode_writes_every_knob_as_one_startd_config_line(
        native_node: tuple[Path, GlideinResult], knobs: dict[str, str | None], classad2) -> None:
    base, result = native_node
    assert result.exit_code == 0, result.stdout
    for name in native.KNOBS:
        assert result.condor_vars[name] == KNOB_LINE.format(name)
    assert (launch_of(result, classad2), startd_values(result, classad2)["HAS_SINGULARITY"]) \
        == ("native", True)
    assert knobs["SINGULARITY"] == str(base / "bin" / "apptainer")
    assert knobs["SINGULARITY_TARGET_DIR"] == "/srv"
    assert knobs["SINGULARITY_USE_PID_NAMESPACES"] == "True"  # the fake runtime has them
    assert knobs["SINGULARITY_IGNORE_MISSING_BIND_TARGET"] == "False"  # it can underlay
    for name in STRING_KNOBS:  # each a valid expression giving a string, whatever the job
        assert isinstance(evaluate(classad2, knobs[name] or "", {}), str), name
    assert evaluate(classad2, knobs["SINGULARITY_EXTRA_ARGUMENTS"] or "", {}) == "--compat"
    assert "HTCondor launches the job containers (no wrapper)" in result.stdout


@pytest.mark.parametrize(("image", "expected"), [
    (None, "default"),
    ("", "default"),
    ("/cvmfs/sft.cern.ch/el9:latest", "rebased"),
    ('/cvmfs/x/a"b\\c d;$(rm -rf)', "rebased"),  # hostile, yet exactly the job's string
    ("ROOT/sft.cern.ch/el9", "as is"),  # already under the mount point
    ("/cvmfs/../etc/passwd", "refused"),
    ("/CVMFS/x/img", "refused"),  # CVMFS paths are case-sensitive
    ("/tmp/my.sif", "refused"),  # not in CVMFS, and the entry allows only CVMFS
    ("docker://alpine:3", "refused"),  # the entry does not allow remote images
    ('x" || true || "', "refused"),  # a quote cannot end the string literal
    (42, "refused"),
])
def test_the_image_is_the_jobs_when_allowed_else_the_nodes_default(
        native_node: tuple[Path, GlideinResult], knobs: dict[str, str | None], classad2,
        image: object, expected: str) -> None:
    """The starter's image: the job's (rebased on CVMFS_MOUNT_DIR), else the node's default; an
    error (the starter then does not start the job) for one the entry forbids."""
    root = str(native_node[0] / "cvmfs")
    if isinstance(image, str):
        image = image.replace("ROOT", root)
    job = {} if image is None else {"SingularityImage": image}
    found = evaluate(classad2, knobs["SINGULARITY_IMAGE_EXPR"] or "", job)
    wanted = {"default": f"{root}/{EL9}", "as is": image,
              "rebased": root + str(image)[len("/cvmfs"):]}
    if expected == "refused":
        assert is_error(classad2, found), found
    else:
        assert found == wanted[expected]


@pytest.mark.parametrize(("mode", "job", "slot", "contained"), [
    ("PREFERRED", {}, {"HAS_SINGULARITY": True}, True),
    ("PREFERRED", {"SingularityImage": "/cvmfs/x"}, {"HAS_SINGULARITY": True}, True),
    ("PREFERRED", {"SingularityAutoLoad": False}, {"HAS_SINGULARITY": True}, False),
    ("PREFERRED", {"SingularityAutoLoad": False, "SingularityImage": "/cvmfs/x"}, {}, True),
    ("PREFERRED", {}, {"HAS_SINGULARITY": False}, False),  # a periodic re-check said broken
    ("PREFERRED", {"SingularityImage": "/cvmfs/x"}, {"HAS_SINGULARITY": False}, True),
    ("REQUIRED", {"SingularityAutoLoad": False}, {"HAS_SINGULARITY": False}, True),
])
def test_which_jobs_htcondor_starts_in_a_container(
        job_expressions: dict[str, str | None], classad2, mode: str, job: dict[str, object],
        slot: dict[str, object], contained: bool) -> None:
    assert evaluate(classad2, job_expressions[mode] or "", job, slot) is contained


@pytest.mark.parametrize(("fail", "pid", "ignore_missing"), [
    (("nopid",), "False", "False"),  # Docker/Kubernetes: --pid fails, so HTCondor must not -C
    (("nounderlay",), "True", "True"),  # binds onto targets missing in the image fail
])
def test_pid_namespaces_and_missing_bind_targets_follow_the_probe(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, htcondor2, fail: tuple[str, ...], pid: str,
        ignore_missing: str) -> None:
    fake_cvmfs.bin.install_runtime("apptainer", fail=fail)
    assert setup(tmp_path, fake_cvmfs).exit_code == 0
    knobs = condor_params(tmp_path / "work")
    assert (knobs["SINGULARITY_USE_PID_NAMESPACES"],
            knobs["SINGULARITY_IGNORE_MISSING_BIND_TARGET"]) == (pid, ignore_missing)


def test_binds_are_one_quoted_string_and_those_htcondor_cannot_carry_are_left_out(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, classad2, htcondor2) -> None:
    fake_cvmfs.bin.install_runtime("apptainer")
    data, quote, space, backslash = (tmp_path / name for name in (
        "data", 'quo"te', "with space", "back\\slash"))
    for path in (data, quote, space, backslash):
        path.mkdir()
    result = setup(tmp_path, fake_cvmfs, GLIDEIN_SINGULARITY_BINDPATH=(
        f"{data}:/data:ro,{quote},{space}:/space,{backslash}:/bs"))
    assert result.exit_code == 0, result.stdout
    found = evaluate(classad2, condor_params(tmp_path / "work")["SINGULARITY_BIND_EXPR"] or "",
                     {})
    assert isinstance(found, str)
    items = found.split(" ")  # HTCondor splits the list on spaces and commas
    assert items[:3] == [f"{data}:/data:ro", str(quote), f"{backslash}:/bs"]
    assert f"{fake_cvmfs.root}:/cvmfs" in items
    assert not [item for item in items if "space" in item]
    assert "SINGULARITY_BIND_EXPR: HTCondor splits its bind list on spaces" in result.stdout


def test_a_rerun_keeps_one_line_per_knob_and_switching_native_off_unsets_them(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, classad2) -> None:
    fake_cvmfs.bin.install_runtime("apptainer")
    for _ in range(2):
        assert setup(tmp_path, fake_cvmfs).exit_code == 0
    work = tmp_path / "work"
    rows = [row.split()[0] for row in (work / "condor_vars.lst").read_text().splitlines()]
    assert sorted(name for name in rows if name in native.KNOBS) == sorted(native.KNOBS)
    assert {line.partition("=")[0] for line in startd_config(work)} >= set(native.KNOBS)

    result = setup(tmp_path, fake_cvmfs, launch="{native: false}")
    assert result.exit_code == 0, result.stdout
    assert launch_of(result, classad2) == "wrapper"
    assert not {line.partition("=")[0] for line in startd_config(work)} & set(native.KNOBS)
    assert "started in their container by the job wrapper" in result.stdout


def test_without_the_setting_the_wrapper_launches_and_no_knob_is_written(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, classad2) -> None:
    fake_cvmfs.bin.install_runtime("apptainer")
    result = setup(tmp_path, fake_cvmfs, launch="{}")
    assert result.exit_code == 0, result.stdout
    assert launch_of(result, classad2) == "wrapper"
    assert not set(native.KNOBS) & set(result.condor_vars)


def test_without_a_runtime_nothing_is_configured_and_the_trace_says_why(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, classad2) -> None:
    result = setup(tmp_path, fake_cvmfs)  # no runtime installed
    assert result.exit_code == 0, result.stdout
    assert startd_values(result, classad2)["HAS_SINGULARITY"] is False
    assert native.LAUNCH_ATTRIBUTE not in result.config
    assert not set(native.KNOBS) & set(result.condor_vars)
    assert "HTCondor-native container launch not configured" in result.stdout


def test_a_runtime_path_htcondor_cannot_take_falls_back_to_the_wrapper(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, classad2) -> None:
    binary = fake_cvmfs.bin.install_runtime("apptainer", directory=tmp_path / 'odd"dir')
    result = setup(tmp_path, fake_cvmfs,
                   env={"GLIDEIN_SINGULARITY_BINARY_OVERRIDE": str(binary)})
    assert result.exit_code == 0, result.stdout
    assert startd_values(result, classad2)["HAS_SINGULARITY"] is True
    assert launch_of(result, classad2) == "wrapper"
    assert not set(native.KNOBS) & set(result.condor_vars)
    assert "HTCondor-native container launch not possible" in result.stdout


@pytest.mark.parametrize("value", ['"yes"', "1", "[true]"])
def test_a_native_setting_that_is_not_a_boolean_stops_the_glidein(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, value: str) -> None:
    fake_cvmfs.bin.install_runtime("apptainer")
    result = setup(tmp_path, fake_cvmfs, launch=f"{{native: {value}}}")
    assert (result.exit_code, result.failure) == (1, "Config")
    assert "native.yaml:5" in result.detail and "launch" in result.detail, result.detail


# ---------------------------------------------------------------------------------------------
# the builder on values no fake node gives setup; everything checked before it is written
# ---------------------------------------------------------------------------------------------

def facts_with(image: str = "/cvmfs/x/el9", runtime: str = "/usr/bin/apptainer",
               gpus: tuple[GpuDevice, ...] = ()) -> Facts:
    probe = RuntimeProbe(RuntimeCandidate(runtime, "test"), True, features={
        "pid_namespaces": True, "missing_target": True})
    return Facts(mode=ModeDecision(Mode.PREFERRED, "", "", ""), runtime=probe,
                 images=(Image("rhel9", image),), image=Image("rhel9", image), gpus=gpus)


@pytest.mark.parametrize("image", ['/cvmfs/x/a"b', "/cvmfs/x/a\\b", "/cvmfs/x/a b #c"])
def test_a_default_image_with_quotes_is_an_exact_classad_string(classad2, image: str) -> None:
    expression = native.build(facts_with(image), {"cvmfs"}, "/cvmfs").knobs[
        "SINGULARITY_IMAGE_EXPR"]
    assert evaluate(classad2, expression, {}) == image


@pytest.mark.parametrize(("facts", "why"), [
    (facts_with(image="/cvmfs/x/it's"), "'"),
    (facts_with(image="/cvmfs/x/$(HOME)"), "macro"),
    (facts_with(runtime='/opt/odd"/apptainer'), "runtime path"),
    (facts_with(runtime="apptainer"), "runtime path"),
])
def test_values_that_could_inject_config_make_native_mode_impossible(facts: Facts,
                                                                     why: str) -> None:
    with pytest.raises(native.NotPossible, match=why.replace("$", r"\$")):
        native.build(facts, {"cvmfs"}, "/cvmfs")


def test_a_runtime_proven_without_any_usable_image_leaves_native_mode_impossible() -> None:
    """HAS_SINGULARITY=True with no image (GlideinWMS's default since issue 14): no default
    image to configure, so the job wrapper starts the jobs that bring their own."""
    facts = Facts(mode=ModeDecision(Mode.PREFERRED, "", "", ""),
                  runtime=facts_with().runtime)
    assert facts.has_singularity
    with pytest.raises(native.NotPossible, match="no usable image"):
        native.build(facts, {"cvmfs"}, "/cvmfs")


@pytest.mark.parametrize(("restrictions", "image", "allowed"), [
    ({"cvmfs"}, "docker://hub.example.org/vo/img:1", False),
    ({"cvmfs", "remote"}, "docker://hub.example.org/vo/img:1", True),
    ({"remote"}, "oras://ghcr.io/vo/img:1", True),
    ({"remote"}, "docker-archive:///home/pilot/secret.tar", False),  # a local file in disguise
    ({"remote"}, "oci://srv/layout", False),
])
def test_remote_images_are_allowed_only_with_the_remote_restriction(
        classad2, restrictions: set[str], image: str, allowed: bool) -> None:
    job = {"SingularityImage": image}
    expression = native.build(facts_with(), restrictions, "/cvmfs").knobs[
        "SINGULARITY_IMAGE_EXPR"]
    found = evaluate(classad2, expression, job)
    assert found == job["SingularityImage"] if allowed else is_error(classad2, found)


def test_an_amd_node_adds_rocm_for_slots_with_gpus(classad2) -> None:
    amd = native.build(facts_with(gpus=(GpuDevice("amd", "MI250X"),)), {"cvmfs"}, "/cvmfs")
    expression = amd.knobs["SINGULARITY_EXTRA_ARGUMENTS"]
    assert evaluate(classad2, expression, {}, {"AssignedGPUs": "GPU-1234abcd"}) == "--rocm"
    assert evaluate(classad2, expression, {}, {}) == ""
    nvidia = native.build(facts_with(gpus=(GpuDevice("nvidia", "A100"),)), {"cvmfs"}, "/cvmfs")
    assert nvidia.knobs["SINGULARITY_EXTRA_ARGUMENTS"] == '""'  # HTCondor adds --nv itself


@pytest.mark.parametrize(("nested", "kept"), [(False, "-C --compat"), (True, "--compat")])
def test_extra_options_htcondor_cannot_split_or_a_nested_glidein_cannot_use_are_left_out(
        classad2, nested: bool, kept: str) -> None:
    facts = facts_with()
    runtime = facts.runtime
    assert runtime is not None
    facts = facts.with_(runtime=RuntimeProbe(runtime.candidate, True, features={
        **runtime.features, "nested": nested}))
    built = native.build(facts, {"cvmfs"}, "/cvmfs", ["-C", "--compat", "--bind=/a b"])
    assert evaluate(classad2, built.knobs["SINGULARITY_EXTRA_ARGUMENTS"], {}) == kept
    assert any("'--bind=/a b' left out" in note for note in built.notes)
    assert any("-C left out: nested" in note for note in built.notes) is nested

