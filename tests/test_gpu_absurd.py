"""One absurd value from a GPU tool or driver file (a memory of 2**63, a negative or NaN size,
an impossible capability, bytes that are not UTF-8, a hostile UUID) costs only that field, or
that row, with a warning naming it: every other field and device is still published. One test
per parser, each through real processes or real files (a small executable printing the exact
bytes on a fake node's PATH)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpu_fakes.fakenode import FakeNode

from glidein_plugins.gpu import amd, condor, libraries, nvidia
from glidein_plugins.gpu.common import Host

HEADER = (b"index, uuid, name, pci.bus_id, memory.total [MiB], compute_cap, driver_version, "
          b"mig.mode.current\n")
GOOD = b"1, GPU-2a2d1c3e-83c2-4a85-9b77-5fd1b1a1a001, NVIDIA H100 80GB HBM3, " \
       b"00000000:1B:00.0, 81559, 9.0, 550.54.15, Disabled\n"
FIELDS = {"uuid": 1, "name": 2, "memory": 4, "capability": 5, "driver": 6}


@pytest.fixture
def node(tmp_path: Path) -> FakeNode:
    return FakeNode(tmp_path)


def printing(node: FakeNode, name: str, **outputs: bytes) -> str:
    """An executable ``name`` on the node's PATH printing ``outputs[key]`` (bytes, verbatim)
    when its first argument is ``-L`` (key L), ``-q`` (key q), anything else (key default)."""
    cases = []
    for key, data in outputs.items():
        (node.base / f"{name}.{key}").write_bytes(data)
        pattern = {"L": "-L", "q": "-q", "p": "-p"}.get(key, "*")
        cases.append(f'  {pattern}) cat "{node.base}/{name}.{key}" ;;')
    script = node.bin / name
    script.write_text('#!/bin/sh\ncase "$1" in\n' + "\n".join(
        sorted(cases, key=lambda line: line.startswith("  *"))) + "\nesac\n")
    script.chmod(0o755)
    return str(script)


def messages(notes: object) -> str:
    return "\n".join(message for _, message in notes)  # type: ignore[attr-defined]


@pytest.mark.parametrize("field, value, warned", [
    ("memory", b"9223372036854775807", "memory '9223372036854775807' is not a plausible size"),
    ("memory", b"-1", "memory '-1' is not a plausible size"),
    ("memory", b"NaN", "memory 'NaN' is not a plausible size"),
    ("memory", b"1e400", "memory '1e400' is not a plausible size"),
    ("capability", b"NaN", "capability 'NaN' is not plausible"),
    ("capability", b"99999.1", "capability '99999.1' is not plausible"),
    ("uuid", b"GPU-$(reboot)", "uuid 'GPU-$(reboot)' is not plausible"),
    ("driver", b"550.54.15;reboot", "driver_version '550.54.15;reboot' is not plausible"),
    ("name", b"NVIDIA \xff\xfe H100\x1b[31m", "name 'NVIDIA \\ufffd\\ufffd H100\\x1b[31m' has "
                                             "unprintable characters"),
])
def test_nvidia_smi_query(node: FakeNode, field: str, value: bytes, warned: str) -> None:
    cells = GOOD.replace(b"1, GPU-2a2d1c3e", b"0, GPU-1b1d1c3e", 1).rstrip(b"\n").split(b", ")
    cells[FIELDS[field]] = value
    exe = printing(node, "nvidia-smi", default=HEADER + b", ".join(cells) + b"\n" + GOOD)
    report, found = nvidia.from_nvidia_smi(node.host(), exe)
    assert report.ok and len(found) == 2
    bad, good = found[0].device, found[1].device
    assert (good.name, good.memory_mb, good.capability) == ("NVIDIA H100 80GB HBM3", 81559, "9.0")
    assert warned in messages(report.notes)
    kept = {"memory": bad.memory_mb == 0 and bad.capability == "9.0",
            "capability": bad.capability == "" and bad.memory_mb == 81559,
            "uuid": bad.uuid == "" and bad.memory_mb == 81559,
            "driver": bad.driver_version == "" and bad.memory_mb == 81559,
            "name": bad.name == "NVIDIA ?? H100?[31m" and bad.memory_mb == 81559}
    assert kept[field], bad


def test_nvidia_smi_list_with_an_absurd_mig_profile(node: FakeNode) -> None:
    row = b"0, GPU-1b1d1c3e-83c2-4a85-9b77-5fd1b1a1a001, NVIDIA A100-SXM4-40GB, " \
          b"00000000:07:00.0, 40960, 8.0, 535.129.03, Enabled\n"
    listing = (b"GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1b1d1c3e-83c2-4a85-9b77-5fd1b1a1a001)\n"
               b"  MIG 1g.99999999999999999999gb Device  0: (UUID: MIG-aaaa0000-1111-5222-8333-"
               b"444455556666)\n"
               b"  MIG 3g.20gb     Device  1: (UUID: MIG-bbbb0000-1111-5222-8333-444455556666)\n")
    exe = printing(node, "nvidia-smi", L=listing, default=HEADER + row + GOOD)
    report, found = nvidia.from_nvidia_smi(node.host(), exe)
    assert [item.device.memory_mb for item in found] == [0, 20480, 81559]
    assert "nvidia-smi -L MIG-aaaa0000-1111-5222-8333-444455556666: memory_mb " \
           "102399999999999999998976 is not plausible" in messages(report.notes)


def test_nvidia_smi_cuda_version(node: FakeNode) -> None:
    exe = printing(node, "nvidia-smi", q=b"CUDA Version                              : 99999.9\n")
    assert nvidia.cuda_version(node.host(), exe) == (
        "", "nvidia-smi -q: version '99999.9' is not plausible: dropped")


def test_condor_gpu_discovery(node: FakeNode) -> None:
    text = ('DetectedGPUs="GPU-aaaa0001, GPU-aaaa0002, GPU-aaaa0003"\n'
            'Common=[ Capability=8.0; MaxSupportedVersion=12040; ]\n'
            'GPU_aaaa0001=[ id="GPU-aaaa0001"; DeviceName="NVIDIA A100-SXM4-40GB"; '
            'GlobalMemoryMb=9223372036854775807; '
            'DeviceUuid="aaaa0001-0000-4000-8000-000000000001"; ]\n'
            'GPU_aaaa0002=[ id="GPU-aaaa0002"; DeviceName="NVIDIA \x1b]0;owned\x07A100"; '
            'Capability=nan; GlobalMemoryMb=-5; ]\n'
            'GPU_aaaa0003=[ id="GPU-aaaa0003"; DeviceName="NVIDIA A100-SXM4-40GB"; '
            'GlobalMemoryMb=40536; ]\n')
    exe = printing(node, "condor_gpu_discovery", default=text.encode())
    report = condor.from_discovery(node.host(), exe)
    assert report.ok and report.extra["cuda_version"] == "12.4"
    assert [(gpu.memory_mb, gpu.capability) for gpu in report.devices] == [
        (0, "8.0"), (0, ""), (40536, "8.0")]
    assert report.devices[1].name == "NVIDIA ?]0;owned?A100"
    text = messages(report.notes)
    for warned in ("'GPU-aaaa0001': memory '9223372036854775807' is not a plausible size",
                   "'GPU-aaaa0002': memory '-5'", "'GPU-aaaa0002': capability 'nan'",
                   "'GPU-aaaa0002': name"):
        assert warned in text, text


def test_condor_gpu_discovery_listing_too_many_devices() -> None:
    ids = ", ".join(f"GPU-{number:08x}" for number in range(5000))
    found = condor.parse(f'DetectedGPUs="{ids}"\nCommon=[ DeviceName="Tesla T4"; ]\n')
    notes: list[tuple[str, str]] = []
    assert len(condor.devices(found, notes)) == 1024
    assert "lists 5000 devices: only the first 1024 are believed" in messages(notes)


def test_rocm_smi(node: FakeNode) -> None:
    huge = "9" * 5000
    text = ('WARNING: AMD GPU device(s) is/are in a low-power state.\n'
            '{"card0": {"Card Series": "AMD Instinct MI210", "GFX Version": "gfx90a", '
            f'"VRAM Total Memory (B)": {huge}, "Unique ID": NaN}}, '
            '"card1": {"Card Series": "AMD Instinct MI210", "GFX Version": "gfx99999999", '
            '"VRAM Total Memory (B)": "68702699520"}, '
            '"card2": {"Card Series": "AMD Instinct MI210", "GFX Version": "gfx9010", '
            '"VRAM Total Memory (B)": -1}, '
            '"system": {"Driver version": "6.7.0$(id)"}}\n')
    exe = printing(node, "rocm-smi", default=text.encode())
    report = amd.from_rocm_smi(node.host(), exe)
    assert report.ok and report.extra["driver_version"] == ""
    assert [(gpu.memory_mb, gpu.capability) for gpu in report.devices] == [
        (0, "gfx90a"), (65520, ""), (0, "gfx90a")]
    text = messages(report.notes)
    for warned in ("rocm-smi card0: memory '99999", "rocm-smi card1: capability 'gfx99999999'",
                   "rocm-smi card2: memory '-1'", "driver version '6.7.0$(id)' is not plausible"):
        assert warned in text, text


def test_kfd_topology(node: FakeNode) -> None:
    node.amd_driver(gpus=3)
    nodes = node.root / amd.NODES.lstrip("/")
    first, second, third = sorted((path for path in nodes.iterdir()
                                   if "simd_count 0" not in (path / "properties").read_text()),
                                  key=lambda path: int(path.name))
    (first / "properties").write_text((first / "properties").read_text().replace(
        "local_mem_size 0", "local_mem_size 18446744073709551615"))
    for bank in (first / "mem_banks").iterdir():
        (bank / "properties").write_text("heap_type 1\nsize_in_bytes 18446744073709551615\n")
    (second / "properties").write_text((second / "properties").read_text().replace(
        "gfx_target_version 90010", "gfx_target_version 99999999999999"))
    (third / "properties").write_text((third / "properties").read_text().replace(
        "unique_id", "unique_id " + "7" * 5000 + "\nignored"))
    report, found, _ = amd.from_kfd(node.host())
    assert [(item.device.memory_mb > 0, item.device.capability) for item in found] == [
        (False, "gfx90a"), (True, ""), (True, "gfx90a")]
    text = messages(report.notes)
    for warned in ("memory_mb 17592186044415 is not plausible", "gfx_target_version "
                   "99999999999999 is not an ISA", "is not a 64-bit value: ignored"):
        assert warned in text, text


def test_proc_driver_nvidia(node: FakeNode) -> None:
    node.nvidia_driver("h100x8")
    gpus = sorted((node.root / nvidia.PROC.lstrip("/") / "gpus").iterdir())
    information = gpus[0] / "information"
    information.write_bytes(information.read_bytes()
                            .replace(b"NVIDIA H100", b"NVIDIA \xff\xfeH100")
                            .replace(b"Device Minor: \t 0", b"Device Minor: \t 99999999999"))
    (gpus[1] / "information").write_bytes((gpus[1] / "information").read_bytes().replace(
        b"GPU UUID: \t GPU-", b"GPU UUID: \t GPU-;reboot;"))
    report, found, minors = nvidia.from_proc(node.host())
    assert len(found) == 8 and found[0].device.name == "NVIDIA ??H100 80GB HBM3"
    assert found[1].device.uuid == "" and found[2].device.uuid.startswith("GPU-")
    assert len(minors) == 7
    text = messages(report.notes)
    for warned in ("name 'NVIDIA \\ufffd\\ufffdH100", "Device Minor '99999999999' is not one",
                   "GPU UUID 'GPU-;reboot;"):
        assert warned in text, text


def test_ldconfig(node: FakeNode) -> None:
    text = (b"3 libs found in cache `/etc/ld.so.cache'\n"
            b"\tlibcuda.so.1 (libc6,x86-64) => /usr/lib64/libcuda.so.1\n"
            b"\tlibnvidia-ml.so.1 (libc6,x86-64) => relative/libnvidia-ml.so.1\n"
            b"\tlibnvidia-ptxjitcompiler.so.1 (libc6,x86-64) => /usr/lib64/\xff\xfe.so.1\n")
    exe = printing(node, "ldconfig", p=text)
    result = node.host().run([exe, "-p"])
    notes: list[tuple[str, str]] = []
    assert libraries.parse_ld_cache(result.stdout, notes) == {
        "libcuda.so.1": "/usr/lib64/libcuda.so.1"}
    assert "ldconfig -p: 2 entries with an implausible name or path left out" in messages(notes)


@pytest.mark.parametrize("text", ["99999.1-115", "6.0.2\x00; reboot", "\xff\xfe", "6" * 100])
def test_rocm_version(node: FakeNode, text: str) -> None:
    node.file("/opt/rocm/.info/version", text)
    notes: list[tuple[str, str]] = []
    assert libraries.rocm_version(node.host(), notes) is None
    assert "/opt/rocm/.info/version: version" in messages(notes)


def test_cuda_probe_answer_out_of_range(node: FakeNode) -> None:
    python = node.bin / "python-answering"
    python.write_text("#!/bin/sh\necho '0 9223372036854775807'\n")
    python.chmod(0o755)
    host = node.host()
    probe = Host(lambda argv, **kwargs: host.run_command([str(python)], **kwargs),
                 host.environ, host.root, host.timeout)
    assert libraries.cuda_driver_version(probe) == (
        "", "cuDriverGetVersion answered '0 9223372036854775807'")


def test_opencl_icd_and_kernel_driver_version(node: FakeNode) -> None:
    node.file("/etc/OpenCL/vendors/nvidia.icd", "libnvidia-opencl.so.1\x1b[2J\n")
    node.file("/etc/OpenCL/vendors/intel.icd", "/usr/lib64/libigdrcl.so\n")
    assert [(lib.name, lib.path) for lib in libraries.opencl_icds(node.host())] == [
        ("opencl:intel", "/usr/lib64/libigdrcl.so"), ("opencl:nvidia", "")]
    node.file("/sys/module/nvidia/version", "550.54.15; reboot\n")
    assert nvidia.kernel_driver_version(node.host()) == ""
