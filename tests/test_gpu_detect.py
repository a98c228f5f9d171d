"""GPU detection on fake nodes: real processes (the fake nvidia-smi, condor_gpu_discovery and
rocm-smi of tests/gpu_fakes) and real files (fake /proc, /sys and /dev trees under a temporary
root), merged, cross-checked and restricted by the slot's assignment."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from gpu_fakes.fakenode import FakeNode, scenario

from glidein_plugins.gpu import detect
from glidein_plugins.gpu.detect import Detection

H100 = "NVIDIA H100 80GB HBM3"
QUERY = ("--query-gpu=index,uuid,name,pci.bus_id,memory.total,compute_cap,driver_version,"
         "mig.mode.current --format=csv,nounits")


@pytest.fixture
def node(tmp_path: Path) -> FakeNode:
    return FakeNode(tmp_path)


def detect_on(node: FakeNode, timeout: float = 10.0, settings: dict[str, str] | None = None,
              condor_dir: str = "") -> Detection:
    host = node.host(timeout)
    return detect.detect(host, detect.find_tools(host, settings or {}, detect.TOOLS, condor_dir))


def warnings(found: Detection) -> list[str]:
    return [message for level, message in found.notes if level == "warning"]


def summary(found: Detection) -> list[tuple[str, str, int, str, bool]]:
    return [(gpu.vendor, gpu.name, gpu.memory_mb, gpu.capability, gpu.mig)
            for gpu in found.devices]


# -- NVIDIA through nvidia-smi ----------------------------------------------------------------


def test_eight_h100_with_one_nvidia_smi_call(node: FakeNode) -> None:
    node.nvidia_smi("h100x8", log=True)
    node.nvidia_driver("h100x8")
    found = detect_on(node)
    assert summary(found) == [("nvidia", H100, 81559, "9.0", False)] * 8
    assert [gpu.uuid for gpu in found.devices] == [gpu["uuid"]
                                                   for gpu in scenario("h100x8")["gpus"]]
    assert found.devices[1].pci_bus_id == "0000:2a:00.0"
    assert {gpu.driver_version for gpu in found.devices} == {"550.54.15"}
    assert node.nvidia_smi_calls() == [QUERY]
    assert warnings(found) == [] and found.reason == ""
    assert ("info", f"usable: 8 GPUs ({H100})") in found.notes


def test_condor_gpu_discovery_agrees_and_gives_the_cuda_version(node: FakeNode) -> None:
    node.nvidia_smi("h100x8")
    node.nvidia_driver("h100x8")
    node.condor("h100x8-nested")
    found = detect_on(node)
    assert len(found.devices) == 8 and warnings(found) == []
    assert found.cuda_version == "12.4"


@pytest.mark.parametrize("with_condor, memory", [(True, [20086, 20082, 40960]),
                                                 (False, [20480, 20480, 40960])])
def test_mig_instances_count_as_devices(node: FakeNode, with_condor: bool,
                                        memory: list[int]) -> None:
    node.nvidia_smi("a100-mig", log=True)
    node.nvidia_driver("a100-mig")
    if with_condor:
        node.condor("a100-mig-nested")
    found = detect_on(node)
    gpus = scenario("a100-mig")["gpus"]
    assert [gpu.uuid for gpu in found.devices] == [mig["uuid"] for mig in gpus[0]["mig"]] + [
        gpus[1]["uuid"]]
    assert [gpu.mig for gpu in found.devices] == [True, True, False]
    assert found.devices[0].name == "NVIDIA A100-SXM4-40GB MIG 3g.20gb"
    assert [gpu.memory_mb for gpu in found.devices] == memory  # HTCondor's are exact
    assert node.nvidia_smi_calls() == [QUERY, "-L"]
    assert warnings(found) == []


def test_mig_instances_unknown_when_listing_fails(node: FakeNode) -> None:
    failing = node.base / "a100-list-fails.json"
    failing.write_text(json.dumps({**scenario("a100-mig"), "list_error": "Unknown Error"}))
    node.tool("nvidia-smi", FAKE_NVIDIA_SMI=str(failing))
    found = detect_on(node)
    assert [gpu.uuid for gpu in found.devices] == [scenario("a100-mig")["gpus"][1]["uuid"]]
    assert any(w.startswith("nvidia-smi -L failed (") and "exit code 255: Unknown Error" in w
               and "the MIG instances of 1 GPU in MIG mode are unknown" in w
               for w in warnings(found)), warnings(found)


def test_a_gpu_in_mig_mode_without_instances_is_not_usable(node: FakeNode) -> None:
    node.nvidia_smi("a100-mig-empty")
    node.nvidia_driver("a100-mig-empty")
    found = detect_on(node)
    assert found.devices == ()
    assert any("is in MIG mode but has no MIG instance" in w for w in warnings(found))


@pytest.mark.parametrize("with_condor, capability", [(True, "7.5"), (False, "")])
def test_old_driver_without_compute_cap(node: FakeNode, with_condor: bool,
                                        capability: str) -> None:
    node.nvidia_smi("t4-old-driver", log=True)
    node.nvidia_driver("t4-old-driver")
    if with_condor:
        node.condor("t4-not-nested")
    found = detect_on(node)
    assert summary(found) == [("nvidia", "Tesla T4", 15109, capability, False)] * 2
    assert node.nvidia_smi_calls() == [QUERY, QUERY.replace("compute_cap,", "")]
    assert ("info", "nvidia-smi does not know the field compute_cap (an old driver): asked "
                    "again without it") in found.notes


def test_recorded_output_with_placeholders(node: FakeNode) -> None:
    """A unified-memory GPU (GB10) has no memory.total: nvidia-smi prints [N/A]."""
    recorded = node.base / "gb10.json"
    recorded.write_text(json.dumps({"about": "recorded-style", "recorded": {"query": (
        "index, uuid, name, pci.bus_id, memory.total [MiB], compute_cap, driver_version, "
        "mig.mode.current\n0, GPU-6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b, NVIDIA GB10, "
        "0000000F:01:00.0, [N/A], 12.1, 580.95.05, [N/A]\n")}}))
    node.tool("nvidia-smi", FAKE_NVIDIA_SMI=str(recorded))
    found = detect_on(node)
    assert summary(found) == [("nvidia", "NVIDIA GB10", 0, "12.1", False)]
    assert found.devices[0].pci_bus_id == "000f:01:00.0"


# -- nvidia-smi failing: the kernel driver's view ---------------------------------------------


@pytest.mark.parametrize("name, why", [
    ("no-driver", "exit code 9: NVIDIA-SMI has failed because it couldn't communicate"),
    ("lost", "exit code 15: Unable to determine the device handle"),
    ("garbage", "exit 0 but unusable output (not the CSV asked for: first line 'Welcome"),
    ("hang", "timed out after"),
])
def test_failing_nvidia_smi_falls_back_to_proc_and_dev(node: FakeNode, name: str,
                                                       why: str) -> None:
    node.nvidia_smi(name)
    node.nvidia_driver("h100x8")
    started = time.monotonic()
    found = detect_on(node, timeout=1.0)
    assert time.monotonic() - started < 15  # a hang costs its timeout, not more
    assert summary(found) == [("nvidia", H100, 0, "", False)] * 8
    assert {gpu.source for gpu in found.devices} == {"/proc/driver/nvidia"}
    assert [gpu.uuid for gpu in found.devices] == [gpu["uuid"]
                                                   for gpu in scenario("h100x8")["gpus"]]
    assert any(why in w for w in warnings(found)), found.notes
    assert any(w.startswith("NVIDIA GPUs from the kernel driver") and "nvidia-smi failed" in w
               for w in warnings(found))


def test_hanging_tools_cost_their_timeout_concurrently(node: FakeNode) -> None:
    node.nvidia_smi("hang")
    node.condor("h100x8-nested", hang=True)
    node.nvidia_driver("h100x8")
    started = time.monotonic()
    found = detect_on(node, timeout=1.0)
    assert time.monotonic() - started < 15
    timed_out = [w for w in warnings(found) if re.search(r"timed out after 1\.\d s", w)]
    assert len(timed_out) == 2, found.notes
    assert len(found.devices) == 8


def test_driver_without_devices(node: FakeNode) -> None:
    node.nvidia_smi("no-devices")
    node.file("/proc/driver/nvidia/version", "NVRM version: NVIDIA UNIX x86_64 Kernel Module  "
                                             "550.54.15  Thu Feb 22 01:44:30 UTC 2024\n")
    (node.root / "proc/driver/nvidia/gpus").mkdir()
    node.dev("nvidiactl")
    found = detect_on(node)
    assert found.devices == () and found.present == 0 and warnings(found) == []
    assert found.reason.startswith("no GPU found: ")
    assert "the driver is loaded but sees no GPU (exit 6: No devices were found)" in found.reason
    assert "/proc/driver/nvidia: 0 GPUs, driver 550.54.15" in found.reason


def test_nvidia_smi_seeing_nothing_while_proc_lists_gpus_is_reported(node: FakeNode) -> None:
    node.nvidia_smi("no-devices")
    node.nvidia_driver("h100x8")
    found = detect_on(node)
    assert found.devices == ()
    assert warnings(found) == [
        "nvidia-smi reports 0 GPUs but /proc/driver/nvidia lists 8",
        "nvidia-smi reports 0 GPUs but /dev has 8 GPU device nodes (nvidia0, nvidia1, nvidia2, "
        "nvidia3, nvidia4, nvidia5, nvidia6, nvidia7)"]
    assert found.reason.startswith("no usable GPU: ")


# -- disagreeing sources are reported ----------------------------------------------------------


@pytest.mark.parametrize("setup, warning", [
    (lambda n: n.nvidia_driver("h100x8", minors=[0, 1]),
     "nvidia-smi reports 8 GPUs but /dev has 2 GPU device nodes (nvidia0, nvidia1)"),
    (lambda n: n.nvidia_driver("h100x8", excluded=(7,)),
     "nvidia-smi reports 8 GPUs but /proc/driver/nvidia lists 7"),
    (lambda n: (n.nvidia_driver("h100x8"), n.condor("a100-mig-nested")),
     "nvidia-smi and condor_gpu_discovery disagree: 8 vs 3 devices; only nvidia-smi: GPU-"),
])
def test_disagreements_are_warnings(node: FakeNode, setup: Callable[[FakeNode], object],
                                    warning: str) -> None:
    node.nvidia_smi("h100x8")
    setup(node)
    found = detect_on(node)
    assert len(found.devices) == 8  # nvidia-smi's answer is kept, the doubt reported
    assert any(w.startswith(warning) for w in warnings(found)), warnings(found)


def test_container_with_two_of_eight_gpus_without_nvidia_smi(node: FakeNode) -> None:
    node.nvidia_driver("h100x8", minors=[3, 5])
    found = detect_on(node)
    gpus = scenario("h100x8")["gpus"]
    assert [gpu.uuid for gpu in found.devices] == [gpus[3]["uuid"], gpus[5]["uuid"]]
    assert found.present == 8
    assert "/proc/driver/nvidia lists 8 GPUs but /dev has 2 GPU device nodes (nvidia3, " \
           "nvidia5)" in warnings(found)


def test_device_nodes_alone(node: FakeNode) -> None:
    node.dev("nvidia0", "nvidia1", "nvidiactl")
    found = detect_on(node)
    assert [(gpu.vendor, gpu.name, gpu.source) for gpu in found.devices] == [
        ("nvidia", "", "/dev/nvidia0"), ("nvidia", "", "/dev/nvidia1")]


# -- condor_gpu_discovery alone -----------------------------------------------------------------


def test_condor_gpu_discovery_from_condor_dir_sees_the_whole_node(node: FakeNode) -> None:
    condor_dir = node.condor("h100x8-nested", condor_dir=True)
    node.nvidia_driver("h100x8")
    node.environ["CUDA_VISIBLE_DEVICES"] = "GPU-7c628bb7"
    found = detect_on(node, condor_dir=str(condor_dir))
    assert [(gpu.name, gpu.memory_mb, gpu.driver_version, gpu.source)
            for gpu in found.devices] == [(H100, 81079, "550.54.15", "condor_gpu_discovery")]
    assert found.present == 8
    # run without the assignment variables, so that it reports every GPU with its own index
    log = (node.base / "condor-env.log").read_text()
    assert log.strip() == "CUDA_VISIBLE_DEVICES=unset GPU_DEVICE_ORDINAL=unset"


@pytest.mark.parametrize("output, code, why", [
    ("error", 1, "Failed to enumerate GPU devices (exit 1)"),
    ("garbage", 0, "exit 0 but printed 'Segmentation fault in libcuda"),
    ("h100x8-nested", 3, "exit code 3"),
])
def test_failing_condor_gpu_discovery_is_reported(node: FakeNode, output: str, code: int,
                                                  why: str) -> None:
    node.condor(output, exit_code=code)
    found = detect_on(node)
    assert found.devices == ()
    assert any(why in w for w in warnings(found)), warnings(found)


def test_an_opencl_only_device(node: FakeNode) -> None:
    node.condor("opencl")
    found = detect_on(node)
    assert summary(found) == [("other", "Intel(R) UHD Graphics 770", 25481, "", False)]


# -- AMD ------------------------------------------------------------------------------------


def test_amd_gpus_from_kfd_and_rocm_smi(node: FakeNode) -> None:
    node.amd_driver()
    node.rocm_smi()
    found = detect_on(node)
    name = "AMD INSTINCT MI250X (MCM) OAM AC MBA"
    assert summary(found) == [("amd", name, 65520, "gfx90a", False)] * 2
    assert [gpu.uuid for gpu in found.devices] == ["GPU-4fcb7a2d9e31c8a5", "GPU-91d3e6b07a2f4c18"]
    assert {gpu.driver_version for gpu in found.devices} == {"6.3.6"}
    assert warnings(found) == []


def test_amd_from_kfd_alone(node: FakeNode) -> None:
    node.amd_driver(gpus=1)
    found = detect_on(node)
    assert summary(found) == [("amd", "AMD gfx90a", 65520, "gfx90a", False)]


@pytest.mark.parametrize("kfd, render, usable, warning", [
    (False, True, 0, "2 AMD GPUs but /dev/kfd is missing: ROCm cannot use them here"),
    (True, False, 0, "AMD GPU 0 (0000:c1:00.0) has no /dev/dri/renderD128: not usable here"),
])
def test_amd_gpus_need_their_device_files(node: FakeNode, kfd: bool, render: bool,
                                          usable: int, warning: str) -> None:
    node.amd_driver(kfd=kfd, render=render)
    if not render:
        node.dev("dri/card0")
    found = detect_on(node)
    assert len(found.devices) == usable and found.present == 2
    assert warning in warnings(found)
    assert found.reason.startswith("2 GPUs on this node, none usable by this glidein: ")


def test_kfd_and_rocm_smi_disagreeing(node: FakeNode) -> None:
    node.amd_driver(gpus=1)
    node.rocm_smi()
    found = detect_on(node)
    assert "/sys/class/kfd lists 1 GPU but rocm-smi 2" in warnings(found)
    assert len(found.devices) == 1


# -- the slot's assignment ------------------------------------------------------------------


@pytest.mark.parametrize("environ, count, reason", [
    ({"CUDA_VISIBLE_DEVICES": "10000"}, 0, "CUDA_VISIBLE_DEVICES=10000 assigns no GPU"),
    ({"CUDA_VISIBLE_DEVICES": ""}, 0, "CUDA_VISIBLE_DEVICES= assigns no GPU"),
    ({"CUDA_VISIBLE_DEVICES": "1,3"}, 2, ""),
    ({"_CONDOR_AssignedGPUs": "GPU-a138012b"}, 1, ""),
    ({"ROCR_VISIBLE_DEVICES": "-1"}, 8, ""),  # not NVIDIA's
])
def test_the_assignment_restricts_what_is_usable(node: FakeNode, environ: dict[str, str],
                                                 count: int, reason: str) -> None:
    node.nvidia_smi("h100x8")
    node.nvidia_driver("h100x8")
    node.environ.update(environ)
    found = detect_on(node)
    assert len(found.devices) == count and found.present == 8
    assert found.reason == (f"8 GPUs on this node, none usable by this glidein: {reason}"
                            if reason else "")


def test_mixed_vendors_each_with_their_assignment(node: FakeNode) -> None:
    node.nvidia_smi("h100x8")
    node.nvidia_driver("h100x8")
    node.amd_driver()
    node.rocm_smi()
    node.environ.update(CUDA_VISIBLE_DEVICES="0,GPU-73a9d466", ROCR_VISIBLE_DEVICES="1")
    found = detect_on(node)
    gpus = scenario("h100x8")["gpus"]
    assert [(gpu.vendor, gpu.uuid) for gpu in found.devices] == [
        ("nvidia", gpus[0]["uuid"]), ("nvidia", gpus[6]["uuid"]),
        ("amd", "GPU-91d3e6b07a2f4c18")]
    assert ("info", "CUDA_VISIBLE_DEVICES=0,GPU-73a9d466: 2 of 8 devices usable") in found.notes


# -- no GPU: say which sources were tried -------------------------------------------------------


def test_no_gpu_names_every_source(node: FakeNode) -> None:
    found = detect_on(node)
    assert found.devices == () and found.present == 0
    assert found.reason == (
        "no GPU found: nvidia-smi: not found on PATH; condor_gpu_discovery: not found on PATH "
        "or in /usr/libexec/condor (CONDOR_DIR unset); /proc/driver/nvidia: absent (no NVIDIA "
        "kernel driver); /dev: no nvidia<N> device node; /sys/class/kfd: absent (no AMD GPU "
        "driver); /dev/kfd: absent; rocm-smi: not found on PATH or in /opt/rocm/bin")


def test_tools_can_be_switched_off_or_named(node: FakeNode) -> None:
    node.nvidia_smi("h100x8")
    elsewhere = node.tool("condor_gpu_discovery", node.base / "elsewhere",
                          FAKE_CONDOR_GPU_DISCOVERY=str(node.base / "missing.txt"))
    found = detect_on(node, settings={"nvidia_smi": "", "condor_gpu_discovery": str(elsewhere),
                                      "rocm_smi": str(node.base / "nope")})
    assert found.devices == ()
    assert "nvidia-smi: not used (gpus setting nvidia_smi is empty)" in found.reason
    assert f"rocm-smi: {node.base / 'nope'} is not an executable file" in found.reason
    assert f"condor_gpu_discovery ({elsewhere}): exit 0 but printed nothing, not DetectedGPUs" \
        in warnings(found)


# -- condor_gpu_discovery and MIG (HTCondor 25: a MIG device is a device, its GPU is not) -----


def test_a_mig_parent_listed_by_an_old_condor_is_not_a_device(node: FakeNode) -> None:
    """HTCondor's own recording of 8 x A100 on AWS, one in MIG mode with two instances: 9
    devices a job can get, not 10; the MIG devices named after their GPU (real output)."""
    real = Path(__file__).parent / "gpu_real" / "condor_gpu_discovery"
    node.tool("condor_gpu_discovery", FAKE_CONDOR_GPU_DISCOVERY=str(
        real / "aws-a100x8-one-mig-nested.txt"), FAKE_CONDOR_GPU_DISCOVERY_EXIT="0")
    found = detect_on(node)
    assert len(found.devices) == 9 and found.cuda_version == "11.4"
    assert summary(found)[:2] == [("nvidia", "NVIDIA A100-SXM4-40GB MIG", 20086, "8.0", True),
                                  ("nvidia", "NVIDIA A100-SXM4-40GB MIG", 20082, "8.0", True)]
    assert "GPU-8aa54555" not in {gpu.uuid[:12] for gpu in found.devices}


def test_mig_devices_without_a_name_take_the_model_the_driver_lists(node: FakeNode) -> None:
    """HTCondor 25 gives MIG devices no DeviceName; without nvidia-smi, the one GPU model the
    kernel driver lists names them."""
    node.condor("a100-mig-nested")
    node.nvidia_driver("a100-mig")
    found = detect_on(node)
    assert [(gpu.name, gpu.mig) for gpu in found.devices] == [
        ("NVIDIA A100-SXM4-40GB", False), ("NVIDIA A100-SXM4-40GB MIG", True),
        ("NVIDIA A100-SXM4-40GB MIG", True)]


def test_compute_instances_sharing_a_gpu_instance_share_its_memory(node: FakeNode) -> None:
    """Three 1c.3g.20gb compute instances of one GPU instance (new UUIDs): each is credited a
    third of it, even where condor_gpu_discovery reports the whole GPU instance for each."""
    base = scenario("a100-mig")
    migs = [{"profile": "1c.3g.20gb", "uuid": f"MIG-{n}aaaaaaa-1111-5222-8333-444455556666"}
            for n in range(3)]
    shared = node.base / "a100-shared.json"
    shared.write_text(json.dumps({**base, "gpus": [{**base["gpus"][0], "mig": migs},
                                                   base["gpus"][1]]}))
    node.tool("nvidia-smi", FAKE_NVIDIA_SMI=str(shared))
    node.nvidia_driver("a100-mig")
    ads = "".join(f'MIG_{m["uuid"][4:].replace("-", "_")}=[ id="{m["uuid"]}"; '
                  f'DeviceUuid="{m["uuid"]}"; GlobalMemoryMb=20086; ]\n' for m in migs)
    output = node.base / "condor-shared.txt"
    output.write_text('DetectedGPUs="' + ", ".join(m["uuid"] for m in migs) + '"\n'
                      "Common=[ DriverVersion=12.20; MaxSupportedVersion=12020; ]\n" + ads)
    node.tool("condor_gpu_discovery", FAKE_CONDOR_GPU_DISCOVERY=str(output),
              FAKE_CONDOR_GPU_DISCOVERY_EXIT="0")
    found = detect_on(node)
    assert [gpu.memory_mb for gpu in found.devices] == [6826, 6826, 6826, 40960]
    assert sum(gpu.memory_mb for gpu in found.devices[:3]) <= 20480
