"""The operator commands, run as real processes on a bare node (``bare_node_env``: no container
runtime or image can be found, whatever the machine): ``glidein-plugins run`` (a dry run, as text
or JSON), ``plugins``, ``--version``. GPU detection stays on here, on an empty node root where
every GPU tool is missing (``gpu_config``), so a dry run says there is no GPU and why, whatever
the machine. The run against a fake runtime is in test_runtime_e2e.py."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import bare_node_env, report_table, run_cli

from glidein_plugins import __version__
from glidein_plugins.engine.registry import BUILTINS

SITE = Path(__file__).parent / "data" / "factory" / "site.yaml"
# what PREFERRED without a runtime publishes: the reference's names, then the host facts
PUBLISHED = ["HAS_SINGULARITY", "HAS_SINGULARITY_REASON", "GWMS_SINGULARITY_STATUS",
             "GLIDEIN_NESTED_CONTAINER", "GLIDEIN_NESTED_CONTAINER_REASON",
             "HAS_UNPRIVILEGED_USER_NAMESPACES"]
# ... the setup state's path for job start (PREFERRED and REQUIRED), published last
STATE = ["GLIDEIN_PLUGINS_STATE", "GLIDEIN_PLUGINS_DIR", "GLIDEIN_PLUGINS_PYTHON"]
# ... and what the gpus plugin publishes on a node without a GPU (every value but the reason)
NO_GPU = {"HAS_GPU": "False", "HAS_GPU_REASON": None, "GLIDEIN_GPU_COUNT": "0",
          "GLIDEIN_GPU_VENDOR": "none", "HAS_CUDA": "False", "HAS_ROCM": "False",
          "HAS_OPENCL": "False", "GLIDEIN_GPU_MIG": "False"}
# where the gpus plugin is told to find each tool: nowhere on the empty node root
GPU_TOOLS = {"nvidia-smi": ("nvidia_smi", "usr/bin"),
             "condor_gpu_discovery": ("condor_gpu_discovery", "usr/libexec/condor"),
             "rocm-smi": ("rocm_smi", "opt/rocm/bin"), "ldconfig": ("ldconfig", "sbin")}
# the sources a GPU is looked for in, each named in HAS_GPU_REASON with what it said
GPU_SOURCE_TOOLS = ("nvidia-smi", "condor_gpu_discovery", "rocm-smi")
GPU_SOURCES = (*GPU_SOURCE_TOOLS, "/proc/driver/nvidia", "/sys/class/kfd", "/dev/kfd")
OSG_BINARY = "oasis.opensciencegrid.org/mis/singularity/bin/singularity"


def gpu_config(tmp_path: Path) -> Path:
    """A factory config pointing the gpus plugin at an empty node root ``tmp_path/gpu-root``
    and at tools that are not there, so that no real GPU, driver or tool of the machine running
    the tests is ever seen."""
    root = tmp_path / "gpu-root"
    root.mkdir()
    settings = {"root": str(root), **{key: f"{root}/{where}/{name}"
                                      for name, (key, where) in GPU_TOOLS.items()}}
    config = tmp_path / "gpus.yaml"
    config.write_text("version: 1\ndefaults:\n  settings:\n    gpus:\n" + "".join(
        f"      {key}: {json.dumps(value)}\n" for key, value in settings.items()))
    return config


def cli(tmp_path: Path, *args: str, code: int = 0):
    """Run the command in an empty directory (with its own TMPDIR) and check it leaves both
    empty: a dry run works in a temporary work dir that it removes. GPU detection is on, a
    ``run`` reading ``gpu_config`` first."""
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    env = {**bare_node_env(tmp_path / "node"), "TMPDIR": str(tmp)}
    del env["GLIDEIN_PLUGINS_DISABLE"]  # bare_node_env blocks the gpus plugin: not here
    if args[:1] == ("run",):  # -v: every decision in the trace, not only the warnings
        args = ("run", "-v", "--config", str(gpu_config(tmp_path)), *args[1:])
    proc = run_cli(list(args), cwd, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert list(cwd.iterdir()) == [] and list(tmp.iterdir()) == []
    return proc


def assert_no_gpu(tmp_path: Path, values: dict[str, str], trace: list[tuple[str, ...]]) -> None:
    """``values`` (name -> value, the gpus plugin's attributes) say there is no GPU, and
    HAS_GPU_REASON why: what the gpus plugin says in the gpu phase of ``trace`` (``(phase,
    plugin, message)``), where every source was tried, each tool where the config put it. The
    published reason is that message, cut to 500 characters (the tools' long test paths may
    make it longer)."""
    reason = values["HAS_GPU_REASON"]
    assert values == {**NO_GPU, "HAS_GPU_REASON": reason}
    said_in_trace = [message for phase, plugin, message in trace
                     if (phase, plugin) == ("gpu", "gpus") and message.startswith("no GPU found: ")]
    assert len(said_in_trace) == 1, trace
    message = said_in_trace[0]
    assert reason == (message if len(message) <= 500 else message[:497] + "..."), reason
    said = dict(item.split(": ", 1) for item in message[len("no GPU found: "):].split("; "))
    assert set(GPU_SOURCES) <= set(said), message
    for name in GPU_SOURCE_TOOLS:
        where = GPU_TOOLS[name][1]
        assert said[name] == f"{tmp_path}/gpu-root/{where}/{name} is not an executable file"
    assert ("gpu", "runner", "0 GPU(s) found") in trace
    assert ("libraries", "gpus", f"ldconfig: {tmp_path}/gpu-root/sbin/ldconfig is not an "
            "executable file: NVIDIA libraries not looked for") in trace


def test_run_shows_every_candidate_and_why_nothing_was_found(tmp_path: Path) -> None:
    out = cli(tmp_path, "run").stdout
    assert "Result:  OK (exit 0)" in out
    assert re.search(r"^Mode:    PREFERRED \(Frontend GLIDEIN_Singularity_Use=PREFERRED", out, re.M)
    assert re.search(r"^Runtime: none: no working container runtime among the (1 candidate|"
                     r"\d+ candidates) below$", out, re.M)
    candidates = {row[1]: row for row in report_table(out, "Runtime candidates")}
    osg = candidates[f"{tmp_path / 'node'}/{OSG_BINARY}"]
    assert osg[3].startswith("rejected: ") and osg[3].endswith("does not exist")
    assert all(row[3].startswith("rejected: ") for row in candidates.values())
    assert "Images: none usable (see the images decisions in the trace)" in out.splitlines()
    attributes = report_table(out, "Attributes")
    assert [row[0] for row in attributes] == [*PUBLISHED, *NO_GPU, *STATE]
    assert [row[2] for row in attributes] == ["singularity"] * len(PUBLISHED) + \
        ["gpus"] * len(NO_GPU) + ["launch"] * len(STATE)
    assert (attributes[0][1:], attributes[2][3]) == (["C", "singularity", "False"],
                                                     '"PREFERRED"')
    trace = [(row[0], row[1], row[3]) for row in report_table(out, "Decision trace")]
    assert any(phase == "runtime" and why.startswith("no working container runtime among")
               for phase, _, why in trace)
    assert any(phase == "images" and "no usable image for platforms" in why
               for phase, _, why in trace)
    assert_no_gpu(tmp_path, {row[0]: row[3][1:-1] if row[1] == "S" else row[3]
                             for row in attributes[len(PUBLISHED):-len(STATE)]}, trace)


def run_json(tmp_path: Path, *args: str, code: int = 0) -> dict:
    return json.loads(cli(tmp_path, "run", "--json", *args, code=code).stdout)


def test_run_json_says_the_same(tmp_path: Path) -> None:
    report = run_json(tmp_path)
    assert (report["entry"], report["exit_code"], report["failure"]) == ("default", 0, None)
    assert report["mode"]["outcome"] == "PREFERRED"
    assert report["runtime"] is None
    rejected = {item["path"]: item for item in report["rejected_runtimes"]}
    osg = rejected[f"{tmp_path / 'node'}/{OSG_BINARY}"]
    assert osg["source"] and osg["plugin"] == "discovery"
    assert osg["reason"].endswith("does not exist")
    assert report["runtime_reason"].startswith(
        f"no working container runtime among {len(rejected)} tried: ")
    assert (report["images"], report["image"], report["binds"], report["rejected_binds"]) == (
        [], None, [], [])
    assert report["gpus"] == []
    names = [a["name"] for a in report["attributes"]]
    assert names == [*PUBLISHED, *NO_GPU, *STATE]
    assert [a["plugin"] for a in report["attributes"]] == ["singularity"] * len(PUBLISHED) + \
        ["gpus"] * len(NO_GPU) + ["launch"] * len(STATE)
    assert report["metrics"] == {"use_singularity": "False", "singularity_mode": "PREFERRED",
                                 "attributes": len(names)}  # a number is a number
    trace = [(event["phase"], event["plugin"], event["message"]) for event in report["trace"]]
    assert {"mode", "images", "runtime", "gpu"} <= {phase for phase, _, _ in trace}
    assert_no_gpu(tmp_path, {a["name"]: a["value"] for a in report["attributes"]
                             if a["plugin"] == "gpus"}, trace)


@pytest.mark.parametrize(("sets", "outcome", "code"), [
    (["GLIDEIN_Singularity_Use=NEVER"], "NEVER", 0),
    (["GLIDEIN_Singularity_Use=never", "GLIDEIN_SINGULARITY_REQUIRE=REQUIRED"], "FAIL", 1),
    (["GLIDEIN_Singularity_Use=REQUIRED"], "REQUIRED", 1),
    (["GLIDEIN_Singularity_Use=DISABLE_GWMS", "UNRELATED=a=b c"], "DISABLE", 0),
])
def test_run_set_changes_glidein_config_values(tmp_path: Path, sets: list[str], outcome: str,
                                               code: int) -> None:
    report = run_json(tmp_path, *(arg for item in sets for arg in ("--set", item)), code=code)
    assert report["mode"]["outcome"] == outcome
    failure = {"FAIL": "VO_Config", "REQUIRED": "WN_Resource"}.get(outcome)
    assert (report["failure"] or {}).get("type") == failure


@pytest.mark.parametrize(("entry", "outcome", "published"), [
    ("CE_ONE", "REQUIRED", []),  # its section: GLIDEIN_SINGULARITY_REQUIRE=REQUIRED (no runtime)
    ("CE_TWO", "PREFERRED", [*NO_GPU, *STATE]),  # its section disables the singularity plugin
    ("UNLISTED", "PREFERRED", [*PUBLISHED, *NO_GPU, *STATE]),  # the defaults
])
def test_run_entry_picks_a_section_of_the_config(tmp_path: Path, entry: str, outcome: str,
                                                 published: list[str]) -> None:
    report = run_json(tmp_path, "--config", str(SITE), "--entry", entry,
                      code=1 if outcome == "REQUIRED" else 0)
    assert (report["entry"], report["mode"]["outcome"]) == (entry, outcome)
    assert report["mode"]["factory"] == ("REQUIRED" if entry == "CE_ONE" else "PREFERRED")
    assert [a["name"] for a in report["attributes"]] == published


def test_run_with_a_broken_config_fails_with_where(tmp_path: Path) -> None:
    bad = Path(__file__).parent / "data" / "factory" / "syntax" / "tab_indent.yaml"
    out = cli(tmp_path, "run", "--config", str(bad), code=1).stdout
    assert f"Result:  FAILED (exit 1): Config: {bad}:2:1: YAML syntax error" in out


@pytest.mark.parametrize("item", ["NOEQUALS", "=value", "BAD KEY=1", "KEY=two\nlines",
                                  "9KEY=1"])
def test_run_rejects_a_malformed_set(tmp_path: Path, item: str) -> None:
    proc = cli(tmp_path, "run", "--set", item, code=2)
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"glidein-plugins: error: --set expects KEY=VALUE (a "
                                  f"glidein_config key and a one-line value), got {item!r}")


def test_run_keep_leaves_the_work_dir(tmp_path: Path) -> None:
    proc = run_cli(["run", "--keep"], tmp_path)
    assert proc.returncode == 0
    kept = Path(proc.stderr.strip().removeprefix("work dir kept: "))
    try:
        assert {"glidein_config", "condor_vars.lst", "otrb_output.xml"} <= {
            path.name for path in kept.iterdir()}
        assert "HAS_SINGULARITY C - + N Y +" in (kept / "condor_vars.lst").read_text()
    finally:
        shutil.rmtree(kept)


BUILTIN_HOOKS = {
    "mode": "glidein_mode_negotiate",
    "images": "glidein_image_select, glidein_images_contribute",
    "discovery": "glidein_runtime_discover",
    "probe": "glidein_runtime_probe",
    "binds": "glidein_binds_contribute, glidein_binds_validate",
    "cvmfs": "glidein_attributes_contribute",
    "gpus": "glidein_attributes_contribute, glidein_gpu_detect, glidein_libraries_detect",
    "singularity": "glidein_attributes_contribute",
    "launch": "glidein_job_launch",
}


DEFAULT_ON = [name for name, (_, on) in BUILTINS.items() if on]  # osg, cms, atlas: per entry


def test_plugins_lists_the_builtins_with_their_hooks(tmp_path: Path) -> None:
    out = cli(tmp_path, "plugins").stdout
    rows = report_table(out, "Registered plugins")
    assert [row[0] for row in rows] == DEFAULT_ON == list(BUILTIN_HOOKS)
    for name, source, distribution, hooks in rows:
        assert (source, distribution, hooks) == ("builtin", "glidein_plugins",
                                                 BUILTIN_HOOKS[name])


def test_plugins_shows_what_an_entry_blocks(tmp_path: Path) -> None:
    out = cli(tmp_path, "plugins", "--config", str(SITE), "--entry", "CE_TWO").stdout
    registered = [row[0] for row in report_table(out, "Registered plugins")]
    assert registered == [name for name in DEFAULT_ON if name != "singularity"]
    assert "Blocked: singularity" in out.splitlines()


def test_plugins_with_a_broken_config_is_a_clear_error(tmp_path: Path) -> None:
    proc = cli(tmp_path, "plugins", "--config", str(tmp_path / "missing.yaml"), code=1)
    assert proc.stderr == (f"glidein-plugins: error: {tmp_path / 'missing.yaml'}: cannot read: "
                           "No such file or directory\n")


def test_version(tmp_path: Path) -> None:
    assert cli(tmp_path, "--version").stdout == f"glidein-plugins {__version__}\n"
