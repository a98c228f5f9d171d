"""NVIDIA GPUs: ``nvidia-smi`` (one CSV query; ``-L`` only when a GPU is in MIG mode), and what
the kernel driver shows without it: ``/proc/driver/nvidia`` and the ``/dev/nvidia<N>`` nodes.

The CSV query asks for a header, so that output which is not an answer to the question (exit 0
with garbage) is recognised and rejected rather than believed. Fields an old driver does not
know (``compute_cap`` needs driver 510) are dropped and the query asked again.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import replace

from glidein_plugins.commands import CommandResult
from glidein_plugins.gpu.common import (
    Enumerated,
    Host,
    Report,
    missing_value,
    pci_bus_id,
    plural,
    to_int,
)
from glidein_plugins.results import GpuDevice

SOURCE = "nvidia-smi"
PROC = "/proc/driver/nvidia"
QUERY_FIELDS = ("index", "uuid", "name", "pci.bus_id", "memory.total", "compute_cap",
                "driver_version", "mig.mode.current")
OPTIONAL_FIELDS = frozenset({"pci.bus_id", "compute_cap", "mig.mode.current"})
NO_DEVICES_EXIT = 6  # "No devices were found": the driver is loaded, no GPU is visible
_INVALID_FIELD = re.compile(r'Field "([^"]+)" is not a valid field to query')
_HEADER_UNIT = re.compile(r"\s*\[[^\]]*\]\s*$")
_GPU_LINE = re.compile(r"^GPU\s+(\d+):\s+(.*?)\s+\(UUID:\s*(GPU-[^)\s]+)\)\s*$")
_MIG_LINE = re.compile(r"^\s+MIG\s+(\S+)\s+Device\s+(\d+):\s+\(UUID:\s*(MIG-[^)\s]+)\)\s*$")
_MIG_MEMORY = re.compile(r"(\d+)gb", re.IGNORECASE)
_KERNEL_MODULE = re.compile(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)*)")
_GPU_UUID = re.compile(r"^GPU-[0-9a-fA-F-]{8,}$")
_DEVICE_NODE = re.compile(r"^nvidia(\d+)$")


def parse_query(text: str, fields: Sequence[str]) -> list[dict[str, str]]:
    """Rows of ``nvidia-smi --query-gpu=FIELDS --format=csv,nounits`` output, each a
    ``field -> value`` dict ('' for ``[N/A]`` and its kind); ValueError when the output is not
    the CSV asked for."""
    rows = [row for row in csv.reader(io.StringIO(text), skipinitialspace=True)
            if any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError("no output")
    header = [_HEADER_UNIT.sub("", cell.strip()) for cell in rows[0]]
    if header != list(fields):
        first = text.strip().splitlines()[0][:80]
        raise ValueError(f"not the CSV asked for: first line {first!r}")
    found = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(fields):
            raise ValueError(f"line {number} has {len(row)} columns, not {len(fields)}")
        values = {name: "" if missing_value(cell) else cell.strip()
                  for name, cell in zip(fields, row)}
        if not values["index"].isdigit():
            raise ValueError(f"line {number}: index {values['index']!r} is not a number")
        found.append(values)
    return found


def parse_list(text: str) -> dict[str, list[tuple[str, str]]]:
    """``nvidia-smi -L``: GPU UUID -> its MIG instances as ``(profile, MIG UUID)``."""
    instances: dict[str, list[tuple[str, str]]] = {}
    current: str | None = None
    for line in text.splitlines():
        gpu = _GPU_LINE.match(line)
        if gpu:
            current = gpu.group(3)
            instances[current] = []
            continue
        mig = _MIG_LINE.match(line)
        if mig and current is not None:
            instances[current].append((mig.group(1), mig.group(3)))
    return instances


def mig_memory_mb(profile: str) -> int:
    """The memory a MIG profile promises (``3g.20gb`` -> 20480 MiB), 0 if it does not say."""
    match = _MIG_MEMORY.search(profile)
    return int(match.group(1)) * 1024 if match else 0


def _device(row: dict[str, str]) -> GpuDevice:
    return GpuDevice("nvidia", row["name"], uuid=row["uuid"],
                     pci_bus_id=pci_bus_id(row.get("pci.bus_id", "")),
                     memory_mb=to_int(row["memory.total"]), capability=row.get("compute_cap", ""),
                     driver_version=row["driver_version"], source=SOURCE)


def _query(host: Host, exe: str) -> tuple[CommandResult, list[str], list[tuple[str, str]]]:
    """Run the query, dropping fields this driver does not know; returns the last result, the
    fields asked for and notes."""
    fields = list(QUERY_FIELDS)
    notes: list[tuple[str, str]] = []
    while True:
        result = host.run([exe, "--query-gpu=" + ",".join(fields), "--format=csv,nounits"])
        unknown = _INVALID_FIELD.search(result.stdout + result.stderr)
        if result.ok or unknown is None or unknown.group(1) not in OPTIONAL_FIELDS or \
                unknown.group(1) not in fields:
            return result, fields, notes
        fields.remove(unknown.group(1))
        notes.append(("info", f"nvidia-smi does not know the field {unknown.group(1)} (an old "
                              "driver): asked again without it"))


def from_nvidia_smi(host: Host, exe: str) -> tuple[Report, list[Enumerated]]:
    """Ask ``nvidia-smi`` (at ``exe``) for the GPUs; MIG instances replace their parent."""
    result, fields, notes = _query(host, exe)
    where = f"{SOURCE} ({exe})"
    if result.returncode == NO_DEVICES_EXIT:
        return Report(SOURCE, ran=True, ok=True, notes=tuple(notes), status=(
            f"{where}: the driver is loaded but sees no GPU (exit {NO_DEVICES_EXIT}: "
            f"{_last_line(result)})")), []
    if not result.ok:
        return Report(SOURCE, ran=True, ok=False, level="warning", notes=tuple(notes),
                      status=result.reason), []
    try:
        rows = parse_query(result.stdout, fields)
    except ValueError as exc:
        return Report(SOURCE, ran=True, ok=False, level="warning", notes=tuple(notes),
                      status=f"{where}: exit 0 but unusable output ({exc})"), []
    found = [Enumerated(_device(row), int(row["index"])) for row in rows]
    mig_parents = [item for item, row in zip(found, rows)
                   if row.get("mig.mode.current", "").lower() == "enabled"]
    if mig_parents:
        found, more = _expand_mig(host, exe, found, mig_parents)
        notes += more
    drivers = sorted({row["driver_version"] for row in rows if row["driver_version"]})
    names = sorted({item.device.name for item in found if item.device.name})
    status = (f"{where}: {plural(len(rows), 'GPU')}"
              + (f" ({', '.join(names)})" if names else "")
              + (f", {plural(len(found), 'usable device')} with MIG" if mig_parents else "")
              + (f", driver {', '.join(drivers)}" if drivers else ""))
    return Report(SOURCE, tuple(item.device for item in found), ran=True, ok=True,
                  status=status, notes=tuple(notes),
                  extra={"physical": str(len(rows)), "driver_version": ", ".join(drivers)}), found


def _expand_mig(host: Host, exe: str, found: list[Enumerated],
                parents: list[Enumerated]) -> tuple[list[Enumerated], list[tuple[str, str]]]:
    """Replace each GPU in MIG mode by its MIG instances, from ``nvidia-smi -L``."""
    result = host.run([exe, "-L"])
    listed = parse_list(result.stdout) if result.ok else {}
    notes: list[tuple[str, str]] = []
    if not result.ok:
        notes.append(("warning", f"{SOURCE} -L failed ({result.reason}): the MIG instances of "
                                 f"{plural(len(parents), 'GPU')} in MIG mode are unknown, "
                                 "counted as none"))
    expanded: list[Enumerated] = []
    for item in found:
        if item not in parents:
            expanded.append(item)
            continue
        gpu = item.device
        instances = listed.get(gpu.uuid, [])
        if result.ok and not instances:
            notes.append(("warning", f"GPU {item.index} ({gpu.uuid}) is in MIG mode but has no "
                                     "MIG instance: no job can use it"))
        expanded += [Enumerated(replace(gpu, name=f"{gpu.name} MIG {profile}", uuid=uuid,
                                        memory_mb=mig_memory_mb(profile), mig=True),
                                item.index, gpu.uuid)
                     for profile, uuid in instances]
    return expanded, notes


def _last_line(result: CommandResult) -> str:
    text = (result.stdout + "\n" + result.stderr).strip()
    return text.splitlines()[-1].strip() if text else "no output"


def kernel_driver_version(host: Host) -> str:
    """The NVIDIA kernel module's version, from /proc/driver/nvidia/version (or /sys)."""
    text = host.read(f"{PROC}/version") or ""
    match = _KERNEL_MODULE.search(text)
    if match:
        return match.group(1)
    return (host.read("/sys/module/nvidia/version") or "").strip()


def parse_information(text: str) -> dict[str, str]:
    """``/proc/driver/nvidia/gpus/BUS/information``: ``Key: value`` lines."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values[key.strip()] = value.strip()
    return values


def from_proc(host: Host) -> tuple[Report, list[Enumerated], dict[str, int]]:
    """The GPUs the kernel driver lists (name, UUID, bus, minor), without running anything.

    Returns the report, the GPUs in PCI order, and each GPU's device minor by bus id.
    """
    buses = host.listdir(f"{PROC}/gpus")
    if buses is None:
        why = ("no NVIDIA kernel driver" if not host.exists(PROC) else
               f"{PROC}/gpus cannot be listed")
        return Report(PROC, status=f"{PROC}: absent ({why})"), [], {}
    version = kernel_driver_version(host)
    found: list[Enumerated] = []
    minors: dict[str, int] = {}
    notes: list[tuple[str, str]] = []
    for bus in buses:
        info = parse_information(host.read(f"{PROC}/gpus/{bus}/information") or "")
        if (info.get("GPU Excluded") or info.get("Blacklisted") or "").lower() == "yes":
            notes.append(("info", f"{PROC}: GPU {bus} is excluded by the driver"))
            continue
        uuid = info.get("GPU UUID", "")
        bus_id = pci_bus_id(info.get("Bus Location", "")) or pci_bus_id(bus)
        device = GpuDevice("nvidia", info.get("Model", ""),
                           uuid=uuid if _GPU_UUID.match(uuid) else "", pci_bus_id=bus_id,
                           driver_version=version, source=PROC)
        found.append(Enumerated(device, len(found)))
        if info.get("Device Minor", "").isdigit():
            minors[bus_id] = int(info["Device Minor"])
    names = sorted({item.device.name for item in found if item.device.name})
    status = (f"{PROC}: {plural(len(found), 'GPU')}" + (f" ({', '.join(names)})" if names else "")
              + (f", driver {version}" if version else ""))
    return Report(PROC, tuple(item.device for item in found), ran=True, ok=True, status=status,
                  notes=tuple(notes), extra={"driver_version": version}), found, minors


def device_minors(host: Host) -> list[int] | None:
    """The minors of the ``/dev/nvidia<N>`` GPU nodes (None when /dev cannot be listed)."""
    entries = host.listdir("/dev")
    if entries is None:
        return None
    return sorted(int(match.group(1)) for match in map(_DEVICE_NODE.match, entries) if match)
