"""The GPU sources' parsers, on output modelled on real published samples (tests/gpu_fakes):
nvidia-smi's CSV and ``-L``, condor_gpu_discovery's nested and not-nested ads (checked against
HTCondor's own ClassAd parser), the KFD topology, rocm-smi's JSON, ``ldconfig -p``,
nvliblist.conf, and the slot assignment variables."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from gpu_fakes.fakenode import FAKES, FakeNode, scenario

from glidein_plugins.gpu import amd, assignment, condor, libraries, nvidia
from glidein_plugins.gpu.common import Enumerated, missing_value, pci_bus_id, to_int, uuid_key
from glidein_plugins.spec.results import GpuDevice

CONDOR = FAKES / "condor"


def condor_output(name: str) -> condor.Discovery:
    return condor.parse((CONDOR / f"{name}.txt").read_text())


# -- nvidia-smi ------------------------------------------------------------------------------


def csv_of(name: str, fields: tuple[str, ...] = nvidia.QUERY_FIELDS) -> str:
    """What the fake nvidia-smi prints for the plugin's query in scenario ``name``."""
    proc = subprocess.run([str(FAKES / "nvidia-smi"), "--query-gpu=" + ",".join(fields),
                           "--format=csv,nounits"], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "FAKE_NVIDIA_SMI": str(FAKES / "nvidia" /
                                                                    f"{name}.json")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_query_rows_of_an_h100_node() -> None:
    rows = nvidia.parse_query(csv_of("h100x8"), nvidia.QUERY_FIELDS)
    assert len(rows) == 8
    assert rows[0] == {"index": "0", "uuid": scenario("h100x8")["gpus"][0]["uuid"],
                       "name": "NVIDIA H100 80GB HBM3", "pci.bus_id": "00000000:18:00.0",
                       "memory.total": "81559", "compute_cap": "9.0",
                       "driver_version": "550.54.15", "mig.mode.current": "Disabled"}


@pytest.mark.parametrize("text, problem", [
    ("", "no output"),
    ("Welcome to the cluster!\n", "not the CSV asked for: first line 'Welcome to the cluster!'"),
    ("index, uuid\n0, GPU-1\n", "not the CSV asked for"),
])
def test_query_output_that_is_no_answer_is_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        nvidia.parse_query(text, ("index", "uuid", "name"))


@pytest.mark.parametrize("bad, problem", [
    ("0, GPU-1", "line 2 has 2 columns, not 3: that GPU is left out"),
    ("zero, GPU-1, X", "line 2: index 'zero' is not a GPU index: that GPU is left out"),
    ("9223372036854775807, GPU-1, X", "is not a GPU index"),
])
def test_a_bad_row_is_left_out_and_the_others_kept(bad: str, problem: str) -> None:
    notes: list[tuple[str, str]] = []
    rows = nvidia.parse_query(f"index, uuid, name\n{bad}\n1, GPU-2, Y\n",
                              ("index", "uuid", "name"), notes)
    assert rows == [{"index": "1", "uuid": "GPU-2", "name": "Y"}]
    assert len(notes) == 1 and notes[0][0] == "warning" and problem in notes[0][1]


@pytest.mark.parametrize("text", ["[N/A]", "N/A", "[Not Supported]", "[Insufficient Permissions]",
                                  "[Unknown Error]", "", "  "])
def test_placeholders_are_no_value(text: str) -> None:
    assert missing_value(text)
    row = nvidia.parse_query(f"index, name, memory.total [MiB]\n0, T, {text}\n",
                             ("index", "name", "memory.total"))[0]
    assert row["memory.total"] == ""


def test_units_in_values_are_tolerated() -> None:
    assert to_int("81559 MiB") == to_int("81559") == 81559
    assert to_int("[N/A]") == 0


def test_list_with_mig_instances() -> None:
    data = scenario("a100-mig")
    text = "\n".join([
        f"GPU 0: NVIDIA A100-SXM4-40GB (UUID: {data['gpus'][0]['uuid']})",
        f"  MIG 3g.20gb     Device  0: (UUID: {data['gpus'][0]['mig'][0]['uuid']})",
        f"  MIG 3g.20gb     Device  1: (UUID: {data['gpus'][0]['mig'][1]['uuid']})",
        f"GPU 1: NVIDIA A100-SXM4-40GB (UUID: {data['gpus'][1]['uuid']})",
        # drivers before 470 named MIG devices after their GPU
        "GPU 2: A100-SXM4-40GB (UUID: GPU-e91edf3b-b297-37c1-a2a7-7601c3238fa2)",
        "  MIG 1g.5gb Device 0: (UUID: MIG-GPU-e91edf3b-b297-37c1-a2a7-7601c3238fa2/7/0)",
    ])
    listed = nvidia.parse_list(text).instances
    assert listed[data["gpus"][0]["uuid"]] == [("3g.20gb", m["uuid"])
                                               for m in data["gpus"][0]["mig"]]
    assert listed[data["gpus"][1]["uuid"]] == []
    assert listed["GPU-e91edf3b-b297-37c1-a2a7-7601c3238fa2"] == [
        ("1g.5gb", "MIG-GPU-e91edf3b-b297-37c1-a2a7-7601c3238fa2/7/0")]


@pytest.mark.parametrize("profile, memory", [("3g.20gb", 20480), ("1g.5gb", 5120),
                                             ("1g.10gb+me", 10240), ("7g.80gb", 81920),
                                             ("odd", 0)])
def test_mig_profile_memory(profile: str, memory: int) -> None:
    assert nvidia.mig_memory_mb(profile) == memory


@pytest.mark.parametrize("line, version", [
    ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Thu Feb 22 01:44:30 UTC 2024",
     "550.54.15"),
    ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  575.57.08  Release Build  "
     "(dvs-builder@U16)", "575.57.08"),
    ("NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  580.65.06  Release Build",
     "580.65.06"),
    ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  418.56  Fri Mar 15 12:59:26 CDT 2019",
     "418.56"),
])
def test_kernel_module_version(tmp_path: Path, line: str, version: str) -> None:
    node = FakeNode(tmp_path)
    node.file("/proc/driver/nvidia/version", line + "\nGCC version:  gcc version 11.4.1\n")
    assert nvidia.kernel_driver_version(node.host()) == version


def test_proc_information_file() -> None:
    text = ("Model: \t\t Tesla K80\nIRQ:   \t\t 33\nGPU UUID: \t GPU-c6398fd0-9366-8e15-5d6a-"
            "369da852f85b\nVideo BIOS: \t 80.21.25.00.02\nBus Type: \t PCI\nDMA Size: \t 40 "
            "bits\nBus Location: \t 0000:00:04.0\nDevice Minor: \t 0\nBlacklisted:\t No\n")
    info = nvidia.parse_information(text)
    assert (info["Model"], info["GPU UUID"], info["Bus Location"], info["Device Minor"]) == (
        "Tesla K80", "GPU-c6398fd0-9366-8e15-5d6a-369da852f85b", "0000:00:04.0", "0")


@pytest.mark.parametrize("text, bus", [("00000000:18:00.0", "0000:18:00.0"),
                                       ("0000:AF:00.0", "0000:af:00.0"),
                                       ("0000:00:04.0", "0000:00:04.0"),
                                       ("3b:00.0", "0000:3b:00.0"), ("N/A", ""), ("", "")])
def test_pci_bus_ids_are_normalised(text: str, bus: str) -> None:
    assert pci_bus_id(text) == bus


# -- condor_gpu_discovery -------------------------------------------------------------------


def test_nested_output_of_an_h100_node() -> None:
    found = condor_output("h100x8-nested")
    gpus = scenario("h100x8")["gpus"]
    assert found.detected == [gpu["uuid"][:12] for gpu in gpus]
    first = found.devices[found.detected[0]]
    assert first["DeviceUuid"] == gpus[0]["uuid"]
    assert (first["DeviceName"], first["Capability"], first["GlobalMemoryMb"]) == (
        "NVIDIA H100 80GB HBM3", "9.0", "81079")
    assert condor.cuda_version(found.common) == "12.4"


def test_not_nested_output_with_common_cuda_prefix() -> None:
    found = condor_output("t4-not-nested")
    gpus = scenario("t4-old-driver")["gpus"]
    assert [found.devices[gpu_id]["DeviceUuid"] for gpu_id in found.detected] == [
        gpu["uuid"][4:] for gpu in gpus]
    devices = [condor.device(gpu_id, found.devices[gpu_id], []) for gpu_id in found.detected]
    assert [(d.vendor, d.name, d.uuid, d.capability, d.memory_mb) for d in devices] == [
        ("nvidia", "Tesla T4", gpu["uuid"], "7.5", 14972) for gpu in gpus]
    assert condor.cuda_version(found.common) == "11.4"  # printed as 11.40


def test_mig_devices_from_the_nested_output() -> None:
    found = condor_output("a100-mig-nested")
    devices = [condor.device(gpu_id, found.devices[gpu_id], []) for gpu_id in found.detected]
    migs = scenario("a100-mig")["gpus"][0]["mig"]
    assert [(d.uuid, d.mig, d.memory_mb, d.vendor) for d in devices[1:]] == [
        (migs[0]["uuid"], True, 20086, "nvidia"), (migs[1]["uuid"], True, 20082, "nvidia")]
    assert not devices[0].mig and devices[0].pci_bus_id == "0000:0f:00.0"


@pytest.mark.parametrize("name, ids, common", [
    ("spaced-by-index", ["CUDA0", "CUDA1"], {"DeviceName": "Tesla V100-PCIE-16GB"}),
    ("mig-9.1-unquoted", ["GPU-5d5ba0d6", "GPU-MIG-0a1b", "GPU-MIG-2c3d"],
     {"MaxSupportedVersion": "11040"}),
    ("opencl", ["OCL0"], {"DeviceName": "Intel(R) UHD Graphics 770", "OpenCLVersion": "3.0"}),
    ("none", [], {}),
])
def test_older_and_other_formats(name: str, ids: list[str], common: dict[str, str]) -> None:
    found = condor_output(name)
    assert found.recognised and not found.error
    assert found.detected == ids
    assert common.items() <= found.common.items()
    for gpu_id in ids:
        assert common.items() <= found.devices[gpu_id].items()


def test_by_index_and_9_1_devices_keep_their_own_properties() -> None:
    spaced = condor_output("spaced-by-index")
    assert spaced.devices["CUDA1"]["DevicePciBusId"] == "0000:D8:00.0"
    assert condor.device("CUDA1", spaced.devices["CUDA1"], []).uuid == \
        "GPU-9e8d7c6b-5a49-4382-b1a0-f9e8d7c6b5a4"
    old = condor_output("mig-9.1-unquoted")
    assert old.devices["GPU-MIG-0a1b"]["DeviceUuid"].startswith("MIG-0a1b2c3d")
    assert condor.device("GPU-MIG-0a1b", old.devices["GPU-MIG-0a1b"], []).mig
    assert condor.cuda_version(old.common) == "11.4"


def test_the_error_line() -> None:
    found = condor_output("error")
    assert found.recognised and found.error == "Failed to enumerate GPU devices"


@pytest.mark.parametrize("props, version", [
    ({"MaxSupportedVersion": "12040", "DriverVersion": "12.40"}, "12.4"),
    ({"MaxSupportedVersion": "11020"}, "11.2"),
    ({"DriverVersion": "12.40"}, "12.4"),
    ({"DriverVersion": "11.2"}, "11.2"),
    ({"DriverVersion": "12.10"}, "12.1"),
    ({}, ""),
])
def test_cuda_version_from_condor(props: dict[str, str], version: str) -> None:
    assert condor.cuda_version(props) == version


VALID_CLASSADS = ["h100x8-nested", "a100-mig-nested", "t4-not-nested", "spaced-by-index",
                  "opencl", "none", "error"]


@pytest.mark.parametrize("name", VALID_CLASSADS)
def test_values_read_as_htcondor_reads_them(classad2, name: str) -> None:
    """Every value our small parser reads equals what HTCondor's ClassAd parser evaluates."""
    text = (CONDOR / f"{name}.txt").read_text()
    ad = classad2.parseOne(text)
    for line in text.splitlines():
        key, _, literal = line.partition("=")
        ours = condor.value(literal)
        theirs = ad[key.strip()]
        if isinstance(ours, dict):
            assert set(ours) == set(theirs.keys()), line
            pairs = [(ours[item], theirs[item]) for item in ours]
        else:
            pairs = [(ours, theirs)]
        for mine, real in pairs:
            if isinstance(real, bool):
                assert mine == str(real).lower(), line
            elif isinstance(real, (int, float)):
                assert float(mine) == real, line
            else:
                assert mine == real, line


def test_nested_strings_with_escapes_and_semicolons() -> None:
    parsed = condor.value('[ id="GPU-1"; DeviceName="A \\"quoted\\"; name"; ECCEnabled=true; ]')
    assert parsed == {"id": "GPU-1", "DeviceName": 'A "quoted"; name', "ECCEnabled": "true"}


# -- AMD -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version, name", [(90010, "gfx90a"), (90008, "gfx908"),
                                           (90402, "gfx942"), (110001, "gfx1101"),
                                           (110501, "gfx1151"), (100306, "gfx1036"), (0, "")])
def test_gfx_target_names(version: int, name: str) -> None:
    assert amd.gfx_name(version) == name


def test_rocm_smi_json_after_warnings() -> None:
    text = "WARNING: AMD GPU device(s) is/are in a low-power state. Check power control\n" + \
        (FAKES / "rocm" / "mi250x.json").read_text()
    devices, driver = amd.parse_smi(text)
    assert driver == "6.3.6"
    assert [(d.name, d.uuid, d.pci_bus_id, d.memory_mb, d.capability) for d in devices] == [
        ("AMD INSTINCT MI250X (MCM) OAM AC MBA", "GPU-4fcb7a2d9e31c8a5", "0000:c1:00.0", 65520,
         "gfx90a"),
        ("AMD INSTINCT MI250X (MCM) OAM AC MBA", "GPU-91d3e6b07a2f4c18", "0000:c6:00.0", 65520,
         "gfx90a")]


@pytest.mark.parametrize("text", ["", "ERROR: GPU[0] : Unable to get product name", "[1, 2]"])
def test_rocm_smi_output_without_cards_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        amd.parse_smi(text)


def test_rocm_smi_keys_are_case_insensitive() -> None:
    text = json.dumps({"card0": {"Card Series": "Radeon RX 7900 XTX",
                                 "VRAM Total Memory (B)": str(24 * 2**30)}})
    devices, _ = amd.parse_smi(text)
    assert (devices[0].name, devices[0].memory_mb) == ("Radeon RX 7900 XTX", 24576)


# -- libraries -------------------------------------------------------------------------------


def test_ld_cache_prefers_the_64_bit_library() -> None:
    cache = libraries.parse_ld_cache((FAKES / "ld.so.cache.txt").read_text())
    assert cache["libcuda.so.1"] == "/lib64/libcuda.so.1"
    assert cache["libc.so.6"] == "/lib64/libc.so.6"
    assert [name for name, _ in libraries.in_cache(cache, "libcuda.so")] == [
        "libcuda.so.1", "libcuda.so"]
    assert libraries.in_cache(cache, "libnvidia-fbc.so") == []


def test_nvliblist_libraries_only() -> None:
    listed = libraries.parse_nvliblist((FAKES / "nvliblist.conf").read_text())
    assert "libcuda.so" in listed and "libnvidia-ml.so" in listed
    assert "nvidia-smi" not in listed and not any(item.startswith("#") for item in listed)


@pytest.mark.parametrize("number, version", [(12040, "12.4"), (11020, "11.2"), (12000, "12.0"),
                                             (10010, "10.1"), (13000, "13.0")])
def test_cuda_version_encoding(number: int, version: str) -> None:
    assert libraries.cuda_version_number(number) == version


# -- the slot's assignment --------------------------------------------------------------------

PHYSICAL = [Enumerated(GpuDevice("nvidia", "H100", uuid=f"GPU-{n}aaaaaaa-1111-2222-3333-{n:012d}"),
                       n) for n in range(4)]
PARENT = "GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77"
MIG = [Enumerated(GpuDevice("nvidia", "A100 MIG", mig=True,
                            uuid=f"MIG-{n}bbbbbbb-1111-2222-3333-444444444444"), 0, PARENT)
       for n in range(2)] + [
    Enumerated(GpuDevice("nvidia", "A100", uuid="GPU-9ccccccc-1111-2222-3333-444444444444"), 1)]


@pytest.mark.parametrize("value, expected", [
    ("0,2", [0, 2]),
    ("2,0", [2, 0]),
    (" 1 , 3 ", [1, 3]),
    ("CUDA1", [1]),
    ("CUDA1, CUDA3", [1, 3]),
    ("GPU-3aaaaaaa", [3]),  # HTCondor's short id
    (PHYSICAL[1].device.uuid, [1]),
    (PHYSICAL[2].device.uuid[4:], [2]),  # without its GPU- prefix
    ("0,7,1", [0]),  # CUDA stops at the first entry naming no device
    ("0,-1,1", [0]),
    ("", []), ("-1", []), ("10000", []), ("NA", []), ("na", []), ("none", []), ("void", []),
])
def test_assignment_of_physical_gpus(value: str, expected: list[int]) -> None:
    chosen, note = assignment.select(assignment.Assignment("CUDA_VISIBLE_DEVICES", value),
                                     PHYSICAL)
    assert [item.index for item in chosen] == expected
    assert note.startswith(f"CUDA_VISIBLE_DEVICES={value}")


@pytest.mark.parametrize("value, expected", [
    (MIG[1].device.uuid, [MIG[1]]),
    ("MIG-0bbbbbbb", [MIG[0]]),
    ("0", MIG[:2]),  # the index of a GPU in MIG mode: its instances, as HTCondor does
    (PARENT, MIG[:2]),
    ("1", [MIG[2]]),
])
def test_assignment_with_mig(value: str, expected: list[Enumerated]) -> None:
    assert assignment.select(assignment.Assignment("CUDA_VISIBLE_DEVICES", value), MIG)[0] == \
        expected


def test_no_assignment_keeps_everything() -> None:
    assert assignment.select(assignment.Assignment(), PHYSICAL) == (PHYSICAL, "")


def test_unknown_entries_are_reported() -> None:
    _, note = assignment.select(assignment.Assignment("CUDA_VISIBLE_DEVICES", "0,GPU-dead"),
                                PHYSICAL)
    assert "'GPU-dead' names no device found here" in note


@pytest.mark.parametrize("vendor, environ, variable", [
    ("nvidia", {"CUDA_VISIBLE_DEVICES": "0", "_CONDOR_AssignedGPUs": "CUDA1"},
     "CUDA_VISIBLE_DEVICES"),
    ("nvidia", {"_CONDOR_AssignedGPUs": "GPU-1"}, "_CONDOR_AssignedGPUs"),
    ("nvidia", {"GPU_DEVICE_ORDINAL": "1", "_CONDOR_AssignedGPUs": "CUDA1"},
     "GPU_DEVICE_ORDINAL"),
    ("amd", {"CUDA_VISIBLE_DEVICES": "0", "ROCR_VISIBLE_DEVICES": "1"}, "ROCR_VISIBLE_DEVICES"),
    ("amd", {"HIP_VISIBLE_DEVICES": "1", "CUDA_VISIBLE_DEVICES": "0"}, "HIP_VISIBLE_DEVICES"),
    ("amd", {"CUDA_VISIBLE_DEVICES": "0"}, "CUDA_VISIBLE_DEVICES"),  # HIP honours it too
    ("nvidia", {"ROCR_VISIBLE_DEVICES": "0"}, ""),
])
def test_which_variable_applies(vendor: str, environ: dict[str, str], variable: str) -> None:
    assert assignment.for_vendor(environ, vendor).variable == variable


def test_uuid_keys() -> None:
    assert uuid_key("GPU-ABC") == uuid_key("abc") == "abc"
    assert uuid_key("MIG-GPU-abc/1/0") == "abc/1/0"
