"""Every real published output of tests/gpu_real through the parser that reads it in
production, checked against expected.json (written from vendor documentation and hardware
specifications, see tests/gpu_real/README.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from glidein_plugins.gpu import amd, condor, nvidia
from glidein_plugins.gpu.common import Enumerated, Host
from glidein_plugins.spec.results import GpuDevice

CORPUS = Path(__file__).parent / "gpu_real"
EXPECTED: dict[str, Any] = {name: value for name, value in json.loads(
    (CORPUS / "expected.json").read_text()).items() if not name.startswith("_")}
TOLERANCE = 0.10


def host_at(root: Path) -> Host:
    def refuse(*args: object, **kwargs: object) -> Any:
        raise AssertionError("no command is run here")
    return Host(refuse, {}, str(root))


def check_memory(devices: list[GpuDevice], expected: dict[str, Any]) -> None:
    below = expected.get("memory_below_spec", {})
    for number, (gpu, size) in enumerate(zip(devices, expected.get("memory_gb", []))):
        if size is None:
            continue
        spec_mb = size * 1024
        if str(number) in below:
            assert 0 < gpu.memory_mb <= spec_mb, (number, gpu)
        else:
            assert abs(gpu.memory_mb - spec_mb) <= TOLERANCE * spec_mb, (number, gpu, size)


def check_capability(devices: list[GpuDevice], expected: dict[str, Any]) -> None:
    wanted = expected["capability"]
    found = [gpu.capability for gpu in devices]
    assert found == wanted or (len(wanted) == 1 and set(found) == set(wanted)), found


def mig_listing(text: str) -> tuple[list[Enumerated], list[tuple[str, str]], nvidia.Listing]:
    listing = nvidia.parse_list(text)
    found = [Enumerated(GpuDevice("nvidia", name, uuid=uuid), index)
             for index, (uuid, name) in enumerate(listing.names.items())]
    parents = [item for item in found if listing.instances[item.device.uuid]]
    expanded, notes = nvidia.expand(found, parents, listing)
    return expanded, notes, listing


def run_list(path: Path, expected: dict[str, Any]) -> None:
    expanded, notes, _ = mig_listing(path.read_text())
    devices = [item.device for item in expanded]
    assert len(devices) == expected["count"]
    assert sum(gpu.mig for gpu in devices) == expected["mig"]
    assert all(gpu.name for gpu in devices)
    check_memory(devices, expected)
    for index, budget in expected.get("budget_gb", {}).items():
        credited = sum(item.device.memory_mb for item in expanded if item.index == int(index))
        assert 0 < credited <= budget * 1024 * (1 + TOLERANCE), (index, credited)
    assert notes == []


def run_csv(path: Path, expected: dict[str, Any]) -> None:
    text = path.read_text()
    fields = [cell.strip().split(" [")[0] for cell in text.splitlines()[0].split(",")]
    notes: list[tuple[str, str]] = []
    rows = nvidia.parse_query(text, fields, notes)
    assert len(rows) == expected["count"] and notes == []
    assert [row["compute_cap"] for row in rows] == expected["capability"]


def run_condor(path: Path, expected: dict[str, Any]) -> None:
    found = condor.parse(path.read_text())
    notes: list[tuple[str, str]] = []
    devices = condor.devices(found, notes)
    assert len(devices) == expected["count"]
    assert sum(gpu.mig for gpu in devices) == expected["mig"]
    assert all(gpu.name and gpu.vendor == "nvidia" for gpu in devices)
    assert not any(level == "warning" for level, _ in notes), notes
    check_capability(devices, expected)
    check_memory(devices, expected)
    assert condor.cuda_version(found.common) == expected["cuda"]


def run_rocm_smi(path: Path, expected: dict[str, Any]) -> None:
    if expected.get("unparseable"):
        with pytest.raises(ValueError):
            amd.parse_smi(path.read_text())
        return
    notes: list[tuple[str, str]] = []
    devices, _ = amd.parse_smi(path.read_text(), notes)
    assert len(devices) == expected["count"] and notes == []
    check_capability(devices, expected)
    check_memory(devices, expected)


def run_kfd(path: Path, expected: dict[str, Any], tmp_path: Path) -> None:
    shutil.copytree(path / "nodes", tmp_path / amd.NODES.lstrip("/"))
    report, found, _ = amd.from_kfd(host_at(tmp_path))
    devices = [item.device for item in found]
    assert report.ok and len(devices) == expected["count"] and report.notes == ()
    check_capability(devices, expected)
    check_memory(devices, expected)


def run_proc(path: Path, expected: dict[str, Any], tmp_path: Path) -> None:
    if "driver" in expected:
        target = tmp_path / nvidia.PROC.lstrip("/") / "version"
        target.parent.mkdir(parents=True)
        shutil.copy(path, target)
        assert nvidia.kernel_driver_version(host_at(tmp_path)) == expected["driver"]
        return
    bus = tmp_path / nvidia.PROC.lstrip("/") / "gpus" / expected["bus"]
    bus.mkdir(parents=True)
    shutil.copy(path, bus / "information")
    report, found, minors = nvidia.from_proc(host_at(tmp_path))
    assert [item.device.name for item in found] == [expected["model"]]
    assert minors == {expected["bus"]: expected["minor"]} and report.notes == ()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_output_gives_its_documented_result(name: str, tmp_path: Path) -> None:
    path, expected = CORPUS / name, EXPECTED[name]
    kind = name.split("/", maxsplit=1)[0]
    if kind == "nvidia-smi-L":
        run_list(path, expected)
    elif kind == "nvidia-smi-csv":
        run_csv(path, expected)
    elif kind == "condor_gpu_discovery":
        run_condor(path, expected)
    elif kind == "rocm-smi":
        run_rocm_smi(path, expected)
    elif kind == "kfd":
        run_kfd(path, expected, tmp_path)
    elif kind == "proc-driver-nvidia":
        run_proc(path, expected, tmp_path)
    else:
        assert kind in ("nvidia-smi-q", "nvidia-smi-banner"), name
        assert nvidia.parse_cuda_version(path.read_text()) == expected["cuda"]


def test_every_output_has_a_source_and_an_expected_result() -> None:
    outputs = {str(path.relative_to(CORPUS)) for path in CORPUS.glob("*/*")
               if path.suffix != ".source" and (path.is_file() or path.parent.name == "kfd")}
    assert outputs == set(EXPECTED) and len(outputs) >= 30
    for name in outputs:
        source = CORPUS / f"{name}.source"
        assert source.is_file() and len(source.read_text().strip()) > 40, name


def test_the_mig_lines_nvidia_smi_shows_are_all_accounted_for() -> None:
    """A MIG line before any GPU line, or under a GPU the query does not report in MIG mode,
    is not silently dropped: it is counted and said (on real -L output)."""
    text = (CORPUS / "nvidia-smi-L/telegraf-a100-80gb-x4.txt").read_text()
    lines = text.splitlines()
    _, notes, listing = mig_listing("\n".join(lines[1:]))  # the GPU 0 line lost
    assert listing.orphans and listing.mig_lines == 4
    assert any("4 MIG lines with no GPU line before it" in message for _, message in notes)
    assert any("-L shows 4 MIG devices but 0 belong" in message for _, message in notes)
