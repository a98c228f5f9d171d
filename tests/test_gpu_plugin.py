"""The ``gpus`` plugin end to end: ``glidein-plugins setup`` and ``run`` as real processes on
fake nodes (tests/gpu_fakes), what they publish checked with HTCondor's ClassAd parser; the
attributes, the libraries, the settings and the container helpers on their own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import IS_PYPY, ROOT, GlideinResult, glidein_result, make_work_dir, startd_values
from gpu_fakes.fakenode import FAKES, FakeNode, scenario

from glidein_plugins.builtin import gpus
from glidein_plugins.config.model import EntryConfig, Setting
from glidein_plugins.errors import GlideinFailure
from glidein_plugins.gpu import container, libraries
from glidein_plugins.gpu.common import Host
from glidein_plugins.node import commands
from glidein_plugins.protocol.glideinwms import glidein_config
from glidein_plugins.spec.context import Context, Deadline
from glidein_plugins.spec.results import Facts, GpuDevice, Library

H100 = "NVIDIA H100 80GB HBM3"
ALWAYS = ["HAS_GPU", "GLIDEIN_GPU_COUNT", "GLIDEIN_GPU_VENDOR", "HAS_CUDA", "HAS_ROCM",
          "HAS_OPENCL", "GLIDEIN_GPU_MIG"]


@pytest.fixture
def node(tmp_path: Path) -> FakeNode:
    return FakeNode(tmp_path / "node")


Published = Callable[[GlideinResult], dict[str, object]]


@pytest.fixture
def published() -> Published:
    """What the startd's ad gets from a setup: evaluated by HTCondor's ClassAd parser, except
    on PyPy (no bindings there), where the values are read by their condor_vars type."""
    if not IS_PYPY:
        import classad2  # noqa: PLC0415 - only where HTCondor's bindings exist

        return lambda result: startd_values(result, classad2)

    def plain(result: GlideinResult) -> dict[str, object]:
        values: dict[str, object] = {}
        for name, row in result.condor_vars.items():
            kind = row.split()[1]
            if name in result.config and name != "GLIDEIN_Site":
                text = result.config[name]
                values[name] = (int(text) if kind == "I" else
                                {"True": True, "False": False}.get(text, text))
        return values

    return plain


class Yaml(str):
    """A setting's value written into the YAML as it is."""


def yaml_text(value: object) -> str:
    if isinstance(value, Yaml):
        return str(value)
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)


def factory_config(tmp_path: Path, node: FakeNode, **settings: object) -> Path:
    """A factory config pointing the plugin at the node's root."""
    lines = ["version: 1", "defaults:"]
    values = {"root": str(node.root), "timeout": 10, **settings}
    lines.append("  settings:")
    lines.append("    gpus:")
    lines += [f"      {key}: {yaml_text(value)}" for key, value in values.items()]
    path = tmp_path / "factory.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(node: FakeNode, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The package as a glidein runs it, with the node's environment and nothing else."""
    env = {**node.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "glidein_plugins", *args], cwd=cwd, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


def setup(tmp_path: Path, node: FakeNode, **settings: object):
    work = make_work_dir(tmp_path / "work")
    config = factory_config(tmp_path, node, **settings)
    proc = cli(node, ["setup", "--config", str(config), "glidein_config"], work)
    return glidein_result(proc, work)


# -- setup, as a glidein runs it -----------------------------------------------------------------


def test_setup_on_an_h100_node(tmp_path: Path, node: FakeNode, published: Published) -> None:
    node.nvidia_smi("h100x8")
    node.nvidia_driver("h100x8")
    node.condor("h100x8-nested")
    node.opencl(nvidia="libnvidia-opencl.so.1")
    result = setup(tmp_path, node)
    assert result.status == "OK", result.stdout + result.stderr
    ad = published(result)
    assert {name: ad[name] for name in (*ALWAYS, "GLIDEIN_GPU_DEVICE_NAME",
                                        "GLIDEIN_GPU_CAPABILITY", "GLIDEIN_GPU_MEMORY_MB",
                                        "GLIDEIN_GPU_DRIVER_VERSION",
                                        "GLIDEIN_CUDA_DRIVER_VERSION")} == {
        "HAS_GPU": True, "GLIDEIN_GPU_COUNT": 8, "GLIDEIN_GPU_VENDOR": "nvidia",
        "HAS_CUDA": True, "HAS_ROCM": False, "HAS_OPENCL": True, "GLIDEIN_GPU_MIG": False,
        "GLIDEIN_GPU_DEVICE_NAME": H100, "GLIDEIN_GPU_CAPABILITY": "9.0",
        "GLIDEIN_GPU_MEMORY_MB": 81559, "GLIDEIN_GPU_DRIVER_VERSION": "550.54.15",
        "GLIDEIN_CUDA_DRIVER_VERSION": "12.4"}
    assert "HAS_GPU_REASON" not in ad
    assert result.condor_vars["GLIDEIN_GPU_COUNT"] == "GLIDEIN_GPU_COUNT I - + N Y +"
    assert result.condor_vars["HAS_GPU"] == "HAS_GPU C - + N Y +"
    assert not any(name.lower().startswith("gpus") or name in ("TotalGPUs", "DetectedGPUs")
                   for name in result.condor_vars)


def test_setup_on_a_mig_node(tmp_path: Path, node: FakeNode, published: Published) -> None:
    node.nvidia_smi("a100-mig")
    node.nvidia_driver("a100-mig")
    node.condor("a100-mig-nested")
    ad = published(setup(tmp_path, node))
    assert (ad["GLIDEIN_GPU_COUNT"], ad["GLIDEIN_GPU_MIG"], ad["GLIDEIN_GPU_MEMORY_MB"]) == (
        3, True, 20082)
    assert ad["GLIDEIN_GPU_DEVICE_NAME"] == \
        "NVIDIA A100-SXM4-40GB,NVIDIA A100-SXM4-40GB MIG 3g.20gb"
    assert (ad["GLIDEIN_CUDA_DRIVER_VERSION"], ad["HAS_CUDA"]) == ("12.2", True)


def test_setup_on_an_amd_node(tmp_path: Path, node: FakeNode, published: Published) -> None:
    node.amd_driver()
    node.rocm_smi()
    node.file("/opt/rocm/.info/version", "6.0.2-115\n")
    ad = published(setup(tmp_path, node))
    assert {name: ad[name] for name in ("GLIDEIN_GPU_VENDOR", "GLIDEIN_GPU_COUNT", "HAS_ROCM",
                                        "HAS_CUDA", "GLIDEIN_GPU_CAPABILITY",
                                        "GLIDEIN_ROCM_VERSION", "GLIDEIN_GPU_MEMORY_MB")} == {
        "GLIDEIN_GPU_VENDOR": "amd", "GLIDEIN_GPU_COUNT": 2, "HAS_ROCM": True,
        "HAS_CUDA": False, "GLIDEIN_GPU_CAPABILITY": "gfx90a", "GLIDEIN_ROCM_VERSION": "6.0.2",
        "GLIDEIN_GPU_MEMORY_MB": 65520}


def test_setup_without_gpu_says_why(tmp_path: Path, node: FakeNode,
                                    published: Published) -> None:
    result = setup(tmp_path, node)
    ad = published(result)
    assert {name: ad[name] for name in ALWAYS} == {
        "HAS_GPU": False, "GLIDEIN_GPU_COUNT": 0, "GLIDEIN_GPU_VENDOR": "none",
        "HAS_CUDA": False, "HAS_ROCM": False, "HAS_OPENCL": False, "GLIDEIN_GPU_MIG": False}
    assert ad["HAS_GPU_REASON"].startswith("no GPU found: nvidia-smi: not found on PATH; ")
    assert "GLIDEIN_GPU_MEMORY_MB" not in ad and "GLIDEIN_GPU_DEVICE_NAME" not in ad


def test_slot_without_assigned_gpu(tmp_path: Path, node: FakeNode,
                                   published: Published) -> None:
    node.nvidia_smi("h100x8")
    node.nvidia_driver("h100x8")
    node.environ["CUDA_VISIBLE_DEVICES"] = "10000"
    ad = published(setup(tmp_path, node))
    assert (ad["HAS_GPU"], ad["GLIDEIN_GPU_COUNT"]) == (False, 0)
    assert ad["HAS_GPU_REASON"] == ("8 GPUs on this node, none usable by this glidein: "
                                    "CUDA_VISIBLE_DEVICES=10000 assigns no GPU")


def test_a_hanging_nvidia_smi_costs_the_configured_timeout(tmp_path: Path, node: FakeNode,
                                                           published: Published) -> None:
    node.nvidia_smi("hang")
    node.nvidia_driver("h100x8", minors=[0, 1])
    started = time.monotonic()
    result = setup(tmp_path, node, timeout=1)
    assert time.monotonic() - started < 30
    ad = published(result)
    assert (ad["HAS_GPU"], ad["GLIDEIN_GPU_COUNT"], ad["GLIDEIN_GPU_DEVICE_NAME"]) == (
        True, 2, H100)
    assert "GLIDEIN_GPU_MEMORY_MB" not in ad  # the kernel driver does not say


@pytest.mark.parametrize("key, value, problem", [
    ("timeout", "'soon'", "settings.gpus.timeout: expected a positive number of seconds, "
                          "got 'soon'"),
    ("timeout", "0", "settings.gpus.timeout: expected a positive number of seconds, got 0"),
    ("root", "relative/dir", "settings.gpus.root: expected an absolute path"),
    ("nvidia_smi", "[a, b]", "settings.gpus.nvidia_smi: expected a path (or '' to skip it)"),
    ("cuda_probe", "'yes'", "settings.gpus.cuda_probe: expected true or false, got 'yes'"),
    ("timout", "5", "settings.gpus.timout: unknown setting (expected one of: timeout, root, "),
])
def test_bad_settings_stop_the_glidein_naming_file_and_line(tmp_path: Path, node: FakeNode,
                                                            key: str, value: str,
                                                            problem: str) -> None:
    work = make_work_dir(tmp_path / "work")
    config = factory_config(tmp_path, node, **{key: Yaml(value)})
    line = next(number for number, text in enumerate(config.read_text().splitlines(), 1)
                if text.strip().startswith(f"{key}:"))
    result = glidein_result(cli(node, ["setup", "--config", str(config), "glidein_config"],
                                work), work)
    assert (result.exit_code, result.failure) == (1, "Config")
    assert f"{config}:{line}: {problem}" in result.detail


# -- the dry run -------------------------------------------------------------------------------


def test_dry_run_on_a_node_without_gpu_says_so_and_why(tmp_path: Path, node: FakeNode) -> None:
    config = factory_config(tmp_path, node)
    (tmp_path / "cwd").mkdir()
    proc = cli(node, ["run", "-v", "--config", str(config)], tmp_path / "cwd")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.split()[:2] == ["HAS_GPU", "C"] and line.endswith("False") for line in lines)
    reason = next(line for line in lines if line.startswith("  HAS_GPU_REASON"))
    for source in ("nvidia-smi: not found on PATH", "condor_gpu_discovery: not found",
                   "/proc/driver/nvidia: absent", "/dev: no nvidia<N> device node",
                   "/sys/class/kfd: absent", "/dev/kfd: absent", "rocm-smi: not found"):
        assert source in reason
    assert any(line.split()[:1] == ["gpu"] and "info" in line and "no GPU found:" in line
               for line in lines)


# -- libraries ---------------------------------------------------------------------------------


def fake_libcuda(directory: Path, version: int) -> Path:
    """A libcuda.so.1 whose cuDriverGetVersion answers ``version`` (needs a C compiler)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build a fake libcuda")
    directory.mkdir(parents=True)
    source = directory / "libcuda.c"
    source.write_text("int cuDriverGetVersion(int *version) "
                      f"{{ *version = {version}; return 0; }}\n")
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(directory / "libcuda.so.1"),
                    str(source)], check=True, timeout=60, capture_output=True)
    return directory


@pytest.mark.parametrize("version, cuda, warning", [
    (12040, "12.4", ""),
    (12060, "12.6", "libcuda says CUDA 12.6, condor_gpu_discovery 12.4"),
])
def test_cuda_version_from_libcuda(tmp_path: Path, node: FakeNode, published: Published,
                                   version: int, cuda: str, warning: str) -> None:
    node.nvidia_smi("h100x8")
    node.nvidia_driver("h100x8")
    node.condor("h100x8-nested")
    node.environ["LD_LIBRARY_PATH"] = str(fake_libcuda(tmp_path / "lib", version))
    result = setup(tmp_path, node)
    ad = published(result)
    assert (ad["GLIDEIN_CUDA_DRIVER_VERSION"], ad["HAS_CUDA"]) == (cuda, True)
    assert f"CUDA driver API {cuda} (libcuda cuDriverGetVersion)" in result.stdout
    assert (warning in result.stdout) if warning else "libcuda says" not in result.stdout


def test_without_libcuda_the_cuda_version_comes_from_nvidia_smi(
        tmp_path: Path, node: FakeNode, published: Published) -> None:
    node.nvidia_smi("h100x8", log=True)  # its nvidia-smi -q states CUDA 12.4
    node.nvidia_driver("h100x8")
    result = setup(tmp_path, node)
    ad = published(result)
    assert (ad["HAS_GPU"], ad["HAS_CUDA"], ad["GLIDEIN_CUDA_DRIVER_VERSION"]) == (
        True, True, "12.4")
    assert "CUDA driver API 12.4 from nvidia-smi -q (libcuda: libcuda.so.1 cannot load" in \
        result.stdout
    assert "-q -d COMPUTE" in node.nvidia_smi_calls()


def test_without_libcuda_nor_a_version_from_nvidia_smi_there_is_no_cuda(
        tmp_path: Path, node: FakeNode, published: Published) -> None:
    silent = node.base / "h100-no-cuda.json"
    silent.write_text(json.dumps({key: value for key, value in scenario("h100x8").items()
                                  if key != "cuda_version"}))
    node.tool("nvidia-smi", FAKE_NVIDIA_SMI=str(silent))
    node.nvidia_driver("h100x8")
    result = setup(tmp_path, node)
    ad = published(result)
    assert (ad["HAS_GPU"], ad["HAS_CUDA"]) == (True, False)
    assert "GLIDEIN_CUDA_DRIVER_VERSION" not in ad
    assert "CUDA driver API version unknown: libcuda.so.1 cannot load" in result.stdout
    assert "nvidia-smi -q states no CUDA version" in result.stdout


def test_one_absurd_value_costs_only_that_field(tmp_path: Path, node: FakeNode,
                                                 published: Published) -> None:
    """A memory of 2**63 from nvidia-smi (a ClassAd integer cannot hold it) is dropped with a
    warning; every GPU attribute is still published, from the other fields and GPUs."""
    h100 = scenario("h100x8")
    rows = [f"{index}, {gpu['uuid']}, {gpu['name']}, {gpu['pci.bus_id']}, "
            f"{2**63 if index == 0 else gpu['memory.total']}, {gpu['compute_cap']}, "
            f"{h100['driver_version']}, Disabled" for index, gpu in enumerate(h100["gpus"])]
    absurd = node.base / "h100-absurd.json"
    absurd.write_text(json.dumps({**h100, "recorded": {"query": "\n".join([
        "index, uuid, name, pci.bus_id, memory.total [MiB], compute_cap, driver_version, "
        "mig.mode.current", *rows]) + "\n"}}))
    node.tool("nvidia-smi", FAKE_NVIDIA_SMI=str(absurd))
    node.nvidia_driver("h100x8")
    result = setup(tmp_path, node)
    ad = published(result)
    assert (ad["HAS_GPU"], ad["GLIDEIN_GPU_COUNT"], ad["GLIDEIN_GPU_DEVICE_NAME"],
            ad["GLIDEIN_GPU_CAPABILITY"], ad["GLIDEIN_GPU_MEMORY_MB"], ad["HAS_CUDA"]) == (
        True, 8, H100, "9.0", h100["gpus"][1]["memory.total"], True)
    assert "nvidia-smi GPU 0: memory '9223372036854775808' is not a plausible size: dropped" \
        in result.stdout


def test_nvidia_libraries_from_nvliblist_and_the_ld_cache(tmp_path: Path, node: FakeNode) -> None:
    node.nvidia_smi("h100x8")
    node.nvidia_driver("h100x8")
    node.ldconfig()
    real = node.file("/lib64/libcuda.so.550.54.15")
    (real.parent / "libcuda.so.1").symlink_to(real.name)
    nvliblist = node.file("/etc/apptainer/nvliblist.conf", (FAKES / "nvliblist.conf").read_text())
    result = setup(tmp_path, node, cuda_probe=False)
    assert (f"NVIDIA libraries for --nv ({nvliblist}): 7 of 13 in the ld cache"
            in result.stdout), result.stdout
    host = node.host()
    cache = libraries.parse_ld_cache((FAKES / "ld.so.cache.txt").read_text())
    found, missing = libraries.nvidia_libraries(host, cache, ["libcuda.so", "libnvidia-fbc.so"])
    assert found == [Library("nvidia:libcuda.so", "550.54.15", "/lib64/libcuda.so.1",
                             source="ld cache (libcuda.so.1)")]
    assert missing == ["libnvidia-fbc.so"]


def test_essential_nvidia_libraries_missing_are_a_warning(tmp_path: Path,
                                                          node: FakeNode) -> None:
    node.nvidia_smi("h100x8")
    node.nvidia_driver("h100x8")
    empty = node.file("/ld.txt", "0 libs found in cache `/etc/ld.so.cache'\n")
    node.tool("ldconfig", FAKE_LDCONFIG=str(empty))
    result = setup(tmp_path, node, cuda_probe=False)
    assert ("not in the ld cache: libcuda.so, libnvidia-ml.so, libnvidia-ptxjitcompiler.so: "
            "--nv cannot give containers what CUDA needs") in result.stdout


def test_nvliblist_next_to_the_runtime() -> None:
    host = Host(commands.run, {}, "/node")
    assert libraries.nvliblist_paths("/opt/apptainer/bin/apptainer", host) == [
        "/opt/apptainer/etc/apptainer/nvliblist.conf",
        "/opt/apptainer/etc/singularity/nvliblist.conf",
        "/node/etc/apptainer/nvliblist.conf", "/node/etc/singularity/nvliblist.conf"]


def test_opencl_icds(node: FakeNode) -> None:
    node.opencl(nvidia="libnvidia-opencl.so.1", amdocl64="libamdocl64.so")
    node.file("/etc/OpenCL/vendors/README", "not an ICD")
    assert libraries.opencl_icds(node.host()) == [
        Library("opencl:amdocl64", path="libamdocl64.so",
                source="/etc/OpenCL/vendors/amdocl64.icd"),
        Library("opencl:nvidia", path="libnvidia-opencl.so.1",
                source="/etc/OpenCL/vendors/nvidia.icd")]


# -- attributes from facts ---------------------------------------------------------------------


def context(tmp_path: Path, **settings: object) -> Context:
    work = make_work_dir(tmp_path / "work")
    entry = EntryConfig("TEST_ENTRY", settings={"gpus": {
        key: Setting(value, "entry.yaml:7") for key, value in settings.items()}})
    return Context(entry, glidein_config.read(work / "glidein_config"), work, Deadline(60), {})


def attributes(tmp_path: Path, facts: Facts) -> dict[str, str]:
    found = gpus.glidein_attributes_contribute(context(tmp_path), facts)
    return {attr.name: attr.classad_literal for attr in found}


def test_attributes_of_mixed_devices(tmp_path: Path) -> None:
    devices = (GpuDevice("nvidia", "NVIDIA A100-SXM4-80GB", uuid="GPU-1", memory_mb=81920,
                         capability="8.0", driver_version="550.54.15"),
               GpuDevice("nvidia", "Tesla V100-PCIE-16GB", uuid="GPU-2", memory_mb=16384,
                         capability="7.0", driver_version="550.54.15"),
               GpuDevice("amd", "AMD Instinct MI210", uuid="GPU-3", memory_mb=0,
                         capability="gfx90a", driver_version="6.3.6"))
    found = attributes(tmp_path, Facts(gpus=devices, libraries=(Library("cuda", "12.4"),)))
    assert found == {
        "HAS_GPU": "True", "GLIDEIN_GPU_COUNT": "3", "GLIDEIN_GPU_VENDOR": '"mixed"',
        "GLIDEIN_GPU_DEVICE_NAME": '"AMD Instinct MI210,NVIDIA A100-SXM4-80GB,'
                                   'Tesla V100-PCIE-16GB"',
        "GLIDEIN_GPU_CAPABILITY": '"7.0,gfx90a"',
        "GLIDEIN_GPU_DRIVER_VERSION": '"550.54.15,6.3.6"',
        "GLIDEIN_CUDA_DRIVER_VERSION": '"12.4"', "HAS_CUDA": "True", "HAS_ROCM": "True",
        "HAS_OPENCL": "False", "GLIDEIN_GPU_MIG": "False", "GLIDEIN_GPU_MEMORY_MB": "16384"}


@pytest.mark.parametrize("capabilities, smallest", [(["9.0", "8.0", "8.6"], "8.0"),
                                                    (["10.0", "9.0"], "9.0"),
                                                    (["12.1", "7.5"], "7.5")])
def test_the_smallest_compute_capability(tmp_path: Path, capabilities: list[str],
                                         smallest: str) -> None:
    devices = tuple(GpuDevice("nvidia", "X", uuid=f"GPU-{n}", capability=text)
                    for n, text in enumerate(capabilities))
    assert attributes(tmp_path, Facts(gpus=devices))["GLIDEIN_GPU_CAPABILITY"] == f'"{smallest}"'


def test_text_from_tools_is_made_publishable(tmp_path: Path, classad2) -> None:
    devices = (GpuDevice("nvidia", 'Odd "GPU" $(HOME)\\', uuid="GPU-1"),)
    found = attributes(tmp_path, Facts(gpus=devices))
    name = classad2.ExprTree(found["GLIDEIN_GPU_DEVICE_NAME"]).eval()
    assert "$(" not in name and '"' not in name


def test_attributes_when_detection_did_not_run(tmp_path: Path) -> None:
    found = attributes(tmp_path, Facts())
    assert found["HAS_GPU_REASON"] == f'"{gpus.NOT_DETECTED}"'


def test_settings_default_and_checked(tmp_path: Path) -> None:
    assert gpus.settings(context(tmp_path)) == gpus.SETTINGS
    assert gpus.settings(context(tmp_path, timeout=3, nvidia_smi=""))["timeout"] == 3
    with pytest.raises(GlideinFailure, match=r"entry\.yaml:7: settings\.gpus\.timeout: "
                                             r"expected a positive number of seconds, got True"):
        gpus.settings(context(tmp_path, timeout=True))


def test_the_detection_of_one_run_is_not_seen_by_another(tmp_path: Path, node: FakeNode) -> None:
    node.nvidia_smi("h100x8")
    first = context(tmp_path / "a", root=str(node.root))
    first.environ.update(node.environ)
    assert len(gpus.glidein_gpu_detect(first)) == 8
    second = context(tmp_path / "b")
    assert gpus.glidein_attributes_contribute(second, Facts())[1].value == gpus.NOT_DETECTED


# -- what the job's container needs ------------------------------------------------------------


@pytest.mark.parametrize("vendors, flags", [((), ()), (("nvidia",), ("--nv",)),
                                            (("amd", "amd"), ("--rocm",)),
                                            (("amd", "nvidia"), ("--nv", "--rocm")),
                                            (("other",), ())])
def test_runtime_flags(vendors: tuple[str, ...], flags: tuple[str, ...]) -> None:
    assert container.runtime_flags(GpuDevice(vendor, "x") for vendor in vendors) == flags


def test_the_assignment_survives_cleanenv() -> None:
    environ = {"CUDA_VISIBLE_DEVICES": "GPU-7c628bb7", "_CONDOR_AssignedGPUs": "GPU-7c628bb7",
               "HOME": "/home/glidein", "GPU_DEVICE_ORDINAL": "GPU-7c628bb7"}
    assert container.preserved(environ) == {key: value for key, value in environ.items()
                                            if key != "HOME"}
    assert container.container_environment({"CUDA_VISIBLE_DEVICES": "0"}) == {
        "APPTAINERENV_CUDA_VISIBLE_DEVICES": "0", "SINGULARITYENV_CUDA_VISIBLE_DEVICES": "0"}


def test_fixtures_describe_where_they_come_from() -> None:
    for path in sorted((FAKES / "nvidia").glob("*.json")):
        assert scenario(path.stem)["about"], path
    assert os.access(FAKES / "nvidia-smi", os.X_OK)
