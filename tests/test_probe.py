"""Built-in ``probe``: real subprocesses against the kit's fake runtime (``testing/fakes``), in
the fake CVMFS's images; and ``glidein-plugins setup`` bounded by its budget when a runtime or
CVMFS hangs, leaving no process behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import FakeBin, FakeCvmfs, glidein_result, make_work_dir, run_cli

from glidein_plugins.builtin import probe
from glidein_plugins.config.model import EntryConfig, Setting
from glidein_plugins.container import probe as probing
from glidein_plugins.container import runtime
from glidein_plugins.protocol.glideinwms.glidein_config import parse
from glidein_plugins.spec.context import Context, Deadline
from glidein_plugins.spec.results import Facts, Image, RuntimeCandidate, RuntimeProbe
from glidein_plugins.testing import FAKES

ESC = "\x1b"


# ---- parsing ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("full", "short", "expected"), [
    ("apptainer version 1.3.4", "1.3.4", ("1.3.4", "apptainer version 1.3.4", "apptainer")),
    ("apptainer version 1.2.5-1.el8", "", ("1.2.5-1.el8", "apptainer version 1.2.5-1.el8",
                                           "apptainer")),
    ("singularity-ce version 4.1.3", "4.1.3", ("4.1.3", "singularity-ce version 4.1.3",
                                               "singularity-ce")),
    ("singularity-ce version 3.11.4-1.el8", "3.11.4-1.el8",
     ("3.11.4-1.el8", "singularity-ce version 3.11.4-1.el8", "singularity-ce")),
    ("SingularityPRO version 3.11-4.el8", "", ("3.11-4.el8", "SingularityPRO version 3.11-4.el8",
                                               "singularity-pro")),
    ("singularity version 3.7.1", "3.7.1", ("3.7.1", "singularity version 3.7.1", "singularity")),
    ("2.6.1-dist", "", ("2.6.1-dist", "2.6.1-dist", "")),  # Singularity 2.x: no prefix
    ("", "1.3.4", ("1.3.4", "1.3.4", "")),  # --version failed, version worked
    (f"{ESC}[0;32mapptainer version 1.3.4{ESC}[0m\n", f"{ESC}[0;32m1.3.4{ESC}[0m",
     ("1.3.4", "apptainer version 1.3.4", "apptainer")),
    ("apptainer version 1.3.4", "Error: not a version", ("1.3.4", "apptainer version 1.3.4",
                                                        "apptainer")),
])
def test_version_and_flavour(full, short, expected):
    assert runtime.parse_version(full, short) == expected


@pytest.mark.parametrize(("line", "mode"), [
    ("         0          0 4294967295", "privileged"),
    ("         0       1000          1", "fakeroot"),
    ("      1000       1000          1", "unprivileged"),
    ("0 0", "privileged"),  # two columns: still a uid_map line
    (f"{ESC}[0;32m         0       1000          1{ESC}[0m", "fakeroot"),
])
def test_privilege_mode_from_uid_map(line, mode):
    assert runtime.privilege_mode(line) == mode


@pytest.mark.parametrize("line", ["", "garbage", "0 x 1", "1 2 3 4"])
def test_a_line_that_is_not_uid_map_is_refused(line):
    with pytest.raises(ValueError, match="uid_map"):
        runtime.privilege_mode(line)


# ---- probing a fake runtime --------------------------------------------------------------------

def run_probe(cvmfs: FakeCvmfs, runtime: Path | str, settings: dict[str, object] | None = None,
              budget: float = 60, image: Path | str | None = None,
              **environ: str) -> tuple[RuntimeProbe, Context]:
    """Probe ``runtime`` with the built-in plugin, testing in the fake rhel9 image."""
    work = cvmfs.root.parent / "work"
    work.mkdir(exist_ok=True)
    entry = EntryConfig("TEST", settings={"probe": {
        key: Setting(value, "test.yaml:1") for key, value in (settings or {}).items()}})
    context = Context(entry, parse(""), work, Deadline(budget), cvmfs.env(**environ))
    facts = Facts(image=Image("rhel9", str(image or cvmfs.images["rhel9"])))
    candidate = RuntimeCandidate(str(runtime), "test", 10)
    return probe.glidein_runtime_probe(context, facts, candidate), context


@pytest.mark.parametrize(("name", "version", "mode", "expected"), [
    ("apptainer", None, "privileged", ("1.3.4", "apptainer version 1.3.4", "apptainer")),
    ("apptainer", "apptainer version 1.2.5", "unprivileged",
     ("1.2.5", "apptainer version 1.2.5", "apptainer")),
    ("singularity", None, "fakeroot", ("4.1.3", "singularity-ce version 4.1.3",
                                       "singularity-ce")),
    ("singularity", "singularity-ce version 3.11.4", "unprivileged",
     ("3.11.4", "singularity-ce version 3.11.4", "singularity-ce")),
    ("singularity", "singularity version 3.7.1", "privileged",
     ("3.7.1", "singularity version 3.7.1", "singularity")),
])
def test_a_working_runtime_is_described(fake_cvmfs, name, version, mode, expected):
    runtime = fake_cvmfs.bin.install_runtime(name, version=version, mode=mode)
    result, _ = run_probe(fake_cvmfs, runtime)
    assert result.ok, result.reason
    assert (result.version, result.full_version, result.flavour) == expected
    assert result.privilege == mode
    assert result.features == {"nested": False, "contain": True, "pid_namespaces": True,
                               "missing_target": True}
    assert result.reasons["user_namespaces"] in ("enabled", "disabled", "unavailable", "error")
    execs = fake_cvmfs.bin.exec_calls(runtime)
    functional = next(call for call in execs if call[-2:] == ["cat", "/proc/self/uid_map"])
    work = str(fake_cvmfs.root.parent / "work")
    assert functional[1:10] == ["--home", f"{work}:/srv", "--pwd", "/srv", "--ipc",
                                "--contain", "--pid", str(fake_cvmfs.images["rhel9"]), "cat"]


def test_version_subcommand_missing_falls_back_to_the_option(fake_cvmfs):
    runtime = fake_cvmfs.bin.install_runtime(
        "singularity", version="singularity version 3.7.1", fail="noversioncmd")
    result, _ = run_probe(fake_cvmfs, runtime)
    assert (result.ok, result.version, result.flavour) == (True, "3.7.1", "singularity")


@pytest.mark.parametrize(("fail", "why"), [
    ("garbage", "unrecognised version output"),
    ("exec-garbage", "exit 0 but printed 'Bus error: 0xdeadbeef (not a uid_map)' instead of "
                     "/proc/self/uid_map"),
    ("fatal0", "exit 0 but stderr says FATAL:   container creation failed"),
    ("exit255", "exit code 255: FATAL:   container creation failed: failed to resolve session"),
    (["fatal0", "ansi"], "exit 0 but stderr says FATAL:   container creation failed"),
])
def test_a_runtime_that_does_not_really_work_is_rejected(fake_cvmfs, fail, why):
    runtime = fake_cvmfs.bin.install_runtime("apptainer", fail=fail)
    result, _ = run_probe(fake_cvmfs, runtime)
    assert not result.ok
    assert why in result.reason
    assert ESC not in result.reason


def test_a_missing_test_image_is_a_rejection_with_the_runtimes_words(fake_cvmfs, tmp_path):
    runtime = fake_cvmfs.bin.install_runtime("apptainer")
    result, _ = run_probe(fake_cvmfs, runtime, image=tmp_path / "no-image")
    assert not result.ok
    assert f"test in {tmp_path / 'no-image'} failed: exit code 255: FATAL:   could not open " \
           f"image {tmp_path / 'no-image'}" in result.reason


@pytest.mark.parametrize(("kind", "why"), [
    ("missing", "{path} does not exist"),
    ("directory", "{path} is a directory, not a program"),
    ("not executable", "{path} is not executable (mode 644)"),
])
def test_what_is_not_a_program_is_rejected_without_running_it(fake_cvmfs, tmp_path, kind, why):
    path = tmp_path / "candidate"
    if kind == "directory":
        path.mkdir()
    elif kind == "not executable":
        path.write_text((FAKES / "apptainer").read_text())
        path.chmod(0o644)
    result, _ = run_probe(fake_cvmfs, path)
    assert (result.ok, result.reason) == (False, why.format(path=path))
    assert fake_cvmfs.bin.calls() == []


@pytest.mark.parametrize("fail", ["ansi", "warning", "warning,ansi"])
def test_colour_codes_are_stripped_and_warnings_are_not_failures(fake_cvmfs, fail):
    runtime = fake_cvmfs.bin.install_runtime("apptainer", mode="fakeroot", fail=fail)
    result, _ = run_probe(fake_cvmfs, runtime)
    assert (result.ok, result.privilege, result.full_version) == (
        True, "fakeroot", "apptainer version 1.3.4")


def test_no_pid_namespace_is_retried_without_pid_and_recorded(fake_cvmfs):
    runtime = fake_cvmfs.bin.install_runtime("apptainer", fail="nopid")
    result, context = run_probe(fake_cvmfs, runtime)
    assert result.ok, result.reason
    assert result.features["pid_namespaces"] is False
    assert result.features["contain"] is True
    assert result.reasons["pid_namespaces"].startswith("--pid failed: exit code 255: FATAL:")
    assert "can't mount proc filesystem" in result.reasons["pid_namespaces"]
    functional = [call for call in fake_cvmfs.bin.exec_calls(runtime) if "cat" in call]
    assert ["--pid" in call for call in functional] == [True, False]
    assert any("works without --pid" in event.message for event in context.trace)


def test_devpts_failure_is_retried_without_contain(fake_cvmfs):
    runtime = fake_cvmfs.bin.install_runtime("apptainer", fail="nested-devpts")
    result, _ = run_probe(fake_cvmfs, runtime)
    assert result.ok, result.reason
    assert (result.features["contain"], result.features["pid_namespaces"]) == (False, False)
    assert "Multiple devpts instances unsupported" in result.reasons["contain"]


@pytest.mark.parametrize("variable", ["APPTAINER_CONTAINER", "SINGULARITY_CONTAINER"])
def test_nested_drops_contain_ipc_and_pid(fake_cvmfs, variable):
    """Inside a container (the variable Apptainer sets), the production options would fail
    ("Multiple devpts instances unsupported"): they are never used, and that is recorded."""
    runtime = fake_cvmfs.bin.install_runtime("apptainer", fail="nested-devpts")
    result, context = run_probe(fake_cvmfs, runtime, **{variable: "/outer/image.sif"})
    assert result.ok, result.reason
    assert result.features["nested"] is True
    assert result.reasons["nested"] == f"{variable} is set (/outer/image.sif)"
    assert (result.features["contain"], result.features["pid_namespaces"]) == (False, False)
    assert "already inside a container" in result.reasons["pid_namespaces"]
    execs = fake_cvmfs.bin.exec_calls(runtime)
    assert execs and all(not {"--contain", "--ipc", "--pid", "-C", "-c", "-p"} & set(call)
                         for call in execs)
    assert any("nested" in event.message for event in context.trace)


@pytest.mark.parametrize(("fail", "can"), [((), True), ("nounderlay", False)])
def test_binding_onto_a_missing_target(fake_cvmfs, fail, can):
    runtime = fake_cvmfs.bin.install_runtime("apptainer", fail=fail)
    result, _ = run_probe(fake_cvmfs, runtime)
    assert result.ok and result.features["missing_target"] is can
    if not can:
        assert (f"destination {probing.MISSING_TARGET} doesn't exist in container"
                in result.reasons["missing_target"])


@pytest.mark.parametrize(("sif", "fail", "can"), [
    (None, (), None), ("image.sif", (), True), ("image.sif", "nosif", False),
    ("absent.sif", (), False)])
def test_sif_only_when_a_sif_test_image_is_configured(fake_cvmfs, tmp_path, sif, fail, can):
    (tmp_path / "image.sif").write_bytes(b"#!/usr/bin/env run-singularity\n\0SIF_MAGIC")
    runtime = fake_cvmfs.bin.install_runtime("apptainer", fail=fail)
    settings = {"sif_image": str(tmp_path / sif)} if sif else {}
    result, _ = run_probe(fake_cvmfs, runtime, settings)
    assert result.ok, "a SIF failure is a missing feature, not a broken runtime"
    assert result.features.get("sif") is can
    used = [call for call in fake_cvmfs.bin.exec_calls(runtime) if any(".sif" in a for a in call)]
    assert bool(used) == bool(sif)
    if can is False:
        assert "FATAL" in result.reasons["sif"]


def test_a_hanging_version_check_costs_the_version_timeout_only(fake_cvmfs):
    runtime = fake_cvmfs.bin.install_runtime("apptainer", fail="version-hang")
    started = time.monotonic()
    result, _ = run_probe(fake_cvmfs, runtime, {"version_timeout": 0.5})
    assert time.monotonic() - started < 10
    assert not result.ok and "version check failed" in result.reason
    assert "timed out" in result.reason
    assert fake_cvmfs.bin.exec_calls(runtime) == [], "no container test for a hung binary"


def _probe_without_images(fake_cvmfs, settings=None, **environ):
    runtime = fake_cvmfs.bin.install_runtime("apptainer")
    work = fake_cvmfs.root.parent / "work"
    work.mkdir(exist_ok=True)
    entry = EntryConfig("TEST", settings={"probe": {
        key: Setting(value, "test.yaml:1") for key, value in (settings or {}).items()}})
    context = Context(entry, parse(""), work, Deadline(60), fake_cvmfs.env(**environ))
    return probe.glidein_runtime_probe(context, Facts(), RuntimeCandidate(str(runtime), "t"))


def test_without_any_image_the_builtin_remote_test_image_proves_the_runtime(fake_cvmfs):
    """GlideinWMS's singularity_get_image_default: its APPTAINER_TEST_IMAGE_DEFAULT last."""
    result = _probe_without_images(fake_cvmfs)
    assert result.ok, result.reason
    assert (result.test_image, result.test_image_source) == (
        "oras://ghcr.io/apptainer/alpine:latest", "GlideinWMS built-in test image")


def test_no_test_image_is_a_test_image_problem_that_names_each_refusal(fake_cvmfs, tmp_path):
    result = _probe_without_images(fake_cvmfs, {"remote_test_image": False},
                                   GWMS_SINGULARITY_IMAGE_DEFAULT=str(tmp_path / "gone.sif"),
                                   APPTAINER_TEST_IMAGE="docker://alpine")
    assert not result.ok and result.test_image_failed
    assert result.reason.startswith("test image problem: no usable image to prove the runtime")
    gone = tmp_path / "gone.sif"
    assert f"GWMS_SINGULARITY_IMAGE_DEFAULT (environment) {gone}: " in result.reason
    assert "APPTAINER_TEST_IMAGE (environment) docker://alpine: remote" in result.reason
    assert "built-in test image oras://ghcr.io/apptainer/alpine:latest: remote" in result.reason


@pytest.mark.parametrize("which", ["GWMS_SINGULARITY_IMAGE_DEFAULT", "APPTAINER_TEST_IMAGE"])
def test_a_local_test_image_from_the_environment_comes_first(fake_cvmfs, tmp_path, which):
    image = tmp_path / "local.sif"
    image.write_text("sif")
    result = _probe_without_images(fake_cvmfs, **{which: str(image)})
    assert result.ok and (result.test_image, result.test_image_source) == (
        str(image), f"{which} (environment)")


def test_gwms_singularity_image_default_wins_over_apptainer_test_image(fake_cvmfs, tmp_path):
    first, second = tmp_path / "first.sif", tmp_path / "second.sif"
    first.write_text("sif")
    second.write_text("sif")
    result = _probe_without_images(fake_cvmfs, GWMS_SINGULARITY_IMAGE_DEFAULT=str(first),
                                   APPTAINER_TEST_IMAGE=str(second))
    assert result.test_image == str(first)


def test_a_remote_test_image_that_cannot_be_pulled_is_the_image_s_problem(fake_cvmfs):
    runtime = fake_cvmfs.bin.install_runtime("apptainer", fail="noremote")
    work = fake_cvmfs.root.parent / "work"
    work.mkdir()
    context = Context(EntryConfig("TEST"), parse(""), work, Deadline(60), fake_cvmfs.env())
    result = probe.glidein_runtime_probe(context, Facts(), RuntimeCandidate(str(runtime), "t"))
    assert not result.ok and result.test_image_failed
    assert result.reason.startswith("the remote test image oras://ghcr.io/apptainer/alpine:latest"
                                    " (GlideinWMS built-in test image) could not be run: ")
    assert result.version == "1.3.4", "the runtime itself answered"
    facts = Facts(rejected_runtimes=(result,))
    assert facts.runtime_reason.startswith("test image problem, not a missing runtime: ")


def test_the_test_image_setting_wins(fake_cvmfs, tmp_path):
    image = tmp_path / "my-image"
    (image / "srv").mkdir(parents=True)
    runtime = fake_cvmfs.bin.install_runtime("apptainer")
    result, _ = run_probe(fake_cvmfs, runtime, {"test_image": str(image)})
    assert result.ok
    assert all(call[-3] == str(image) or call[-2] == str(image)
               for call in fake_cvmfs.bin.exec_calls(runtime))


# ---- the cache ---------------------------------------------------------------------------------

def test_a_probe_within_the_ttl_comes_from_the_cache(fake_cvmfs):
    runtime = fake_cvmfs.bin.install_runtime("apptainer", mode="fakeroot")
    first, _ = run_probe(fake_cvmfs, runtime)
    calls = len(fake_cvmfs.bin.calls())
    second, context = run_probe(fake_cvmfs, runtime)
    assert second == first
    assert len(fake_cvmfs.bin.calls()) == calls, "the cached probe ran nothing"
    assert any("from the cache" in event.message for event in context.trace)
    # another image, or nested now: not the cached answer
    run_probe(fake_cvmfs, runtime, image=fake_cvmfs.images["rhel8"])
    assert len(fake_cvmfs.bin.calls()) > calls


@pytest.mark.parametrize("ttl", [0, 1e-6])
def test_a_zero_or_expired_ttl_probes_again(fake_cvmfs, ttl):
    runtime = fake_cvmfs.bin.install_runtime("apptainer")
    run_probe(fake_cvmfs, runtime, {"cache_ttl": ttl})
    calls = len(fake_cvmfs.bin.calls())
    time.sleep(0.01)
    result, _ = run_probe(fake_cvmfs, runtime, {"cache_ttl": ttl})
    assert result.ok and len(fake_cvmfs.bin.calls()) == 2 * calls
    cache = fake_cvmfs.root.parent / "work" / probing.CACHE
    assert cache.exists() == (ttl > 0)


@pytest.mark.parametrize("content", ["", "not json", "[1, 2]", '{"key": {"time": "x"}}'])
def test_a_broken_cache_is_ignored_and_replaced(fake_cvmfs, content):
    cache = fake_cvmfs.root.parent / "work" / probing.CACHE
    cache.parent.mkdir(parents=True)
    cache.write_text(content)
    runtime = fake_cvmfs.bin.install_runtime("apptainer")
    result, _ = run_probe(fake_cvmfs, runtime)
    assert result.ok and fake_cvmfs.bin.calls()
    assert runtime.as_posix() in cache.read_text()


def test_a_failed_probe_is_not_cached(fake_cvmfs):
    runtime = fake_cvmfs.bin.install_runtime("apptainer", fail="exit255")
    run_probe(fake_cvmfs, runtime)
    calls = len(fake_cvmfs.bin.calls())
    run_probe(fake_cvmfs, runtime)
    assert len(fake_cvmfs.bin.calls()) == 2 * calls


# ---- whole setups: the first candidate that works, every rejection explained, the budget -------

def setup(fake_cvmfs: FakeCvmfs, tmp_path: Path, budget: float = 60, mode: str = "REQUIRED",
          **environ: str):
    config = tmp_path / "entry.yaml"
    config.write_text(f"version: 1\ndefaults:\n  budget_seconds: {budget}\n")
    work = make_work_dir(tmp_path / "glidein", {"GLIDEIN_Singularity_Use": mode})
    started = time.monotonic()
    proc = run_cli(["setup", "--config", str(config), "glidein_config"], work,
                   fake_cvmfs.env(**{"SINGULARITY_IMAGES_DICT": fake_cvmfs.images_dict("rhel9"),
                                     **environ}))
    return glidein_result(proc, work), time.monotonic() - started


def test_the_first_candidate_that_works_wins_and_the_others_are_explained(fake_cvmfs, tmp_path):
    fakes = fake_cvmfs.bin
    broken = fakes.install_runtime("apptainer", directory=tmp_path / "a", fail="exit255")
    working = fakes.install_runtime("apptainer", directory=tmp_path / "b", mode="fakeroot")
    later = fakes.install_runtime("singularity", directory=tmp_path / "a")
    result, _ = setup(fake_cvmfs, tmp_path, PATH=f"{tmp_path / 'a'}:{tmp_path / 'b'}:/usr/bin:/bin")
    assert result.exit_code == 0, result.stdout
    assert (result.config["SINGULARITY_PATH"], result.config["SINGULARITY_MODE"]) == (
        str(working), "fakeroot")
    assert f"rejected {broken} (apptainer on PATH): test in " in result.stdout
    assert "exit code 255: FATAL:" in result.stdout
    assert fakes.calls(later) == [], "probing stops at the first candidate that works"


def test_required_with_every_candidate_failing_names_them_all(fake_cvmfs, tmp_path):
    fakes = fake_cvmfs.bin
    garbage = fakes.install_runtime("apptainer", fail="exec-garbage")
    fatal = fakes.install_runtime("singularity", fail="fatal0")
    result, _ = setup(fake_cvmfs, tmp_path)
    assert (result.exit_code, result.failure) == (1, "WN_Resource")
    detail = result.detail
    assert detail.startswith("Singularity is REQUIRED but no working container runtime among 3")
    for path, why in [(garbage, "exit 0 but printed"), (fatal, "exit 0 but stderr says FATAL"),
                      (fake_cvmfs.osg_binary, "does not exist")]:
        assert f"{path} (" in detail and why in detail.split(str(path), 1)[1]


def leftovers(fakes: FakeBin) -> list[str]:
    """Processes still running that were started for this test: their environment names the
    test's fake runtime log (the fakes, their `sleep`, a `stat`)."""
    marker = f"FAKE_RUNTIME_LOG={fakes.log}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{pid}: {command}")
    return found


BUDGET = 3.0
SLACK = 8.0  # starting Python and reading the results on a loaded machine


@pytest.mark.parametrize("fail", ["hang", "exec-hang"])
def test_a_hanging_runtime_ends_within_the_budget_and_leaves_nothing(fake_cvmfs, tmp_path, fail):
    runtime = fake_cvmfs.bin.install_runtime("apptainer", fail=fail)
    result, seconds = setup(fake_cvmfs, tmp_path, budget=BUDGET)
    assert seconds < BUDGET + SLACK
    assert (result.exit_code, result.failure) == (1, "WN_Resource")
    assert f"{runtime} (apptainer on PATH): " in result.detail
    assert "timed out" in result.detail.split(str(runtime), 1)[1]
    time.sleep(0.2)
    assert leftovers(fake_cvmfs.bin) == []


@pytest.mark.parametrize("image_required", ["", "true"])
def test_a_stale_cvmfs_ends_within_the_budget_and_leaves_nothing(fake_cvmfs, tmp_path,
                                                                 image_required):
    """stat (and the runtime) hang on everything under the CVMFS root, where the images are:
    no image is usable, so the runtime is proven with the built-in remote test image (as
    GlideinWMS does), unless SINGULARITY_IMAGE_REQUIRED makes the missing image fatal."""
    fake_cvmfs.bin.install_runtime("apptainer")
    fake_cvmfs.bin.install_stat()
    result, seconds = setup(fake_cvmfs, tmp_path, budget=BUDGET,
                            FAKE_STAT_HANG=str(fake_cvmfs.root),
                            SINGULARITY_IMAGE_REQUIRED=image_required)
    assert seconds < BUDGET + SLACK
    if image_required:
        assert (result.exit_code, result.failure) == (1, "WN_Resource")
        assert "SINGULARITY_IMAGE_REQUIRED=true (environment) requires an image" in result.detail
    else:
        assert result.exit_code == 0, result.stdout
        assert result.config["GLIDEIN_SINGULARITY_TEST_IMAGE"] == (
            "oras://ghcr.io/apptainer/alpine:latest")
    assert "stale CVMFS" in result.stdout
    time.sleep(0.2)
    assert leftovers(fake_cvmfs.bin) == []


def test_preferred_without_a_working_runtime_says_why(fake_cvmfs, tmp_path):
    fake_cvmfs.bin.install_runtime("apptainer", fail="exit255")
    result, _ = setup(fake_cvmfs, tmp_path, mode="PREFERRED")
    assert result.exit_code == 0
    assert result.config["HAS_SINGULARITY"] == "False"
    assert "exit code 255" in result.config["HAS_SINGULARITY_REASON"]
