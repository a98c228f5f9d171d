"""NVIDIA GPUs: ``nvidia-smi`` (one CSV query; ``-L`` only when a GPU is in MIG mode), and what
the kernel driver shows without it: ``/proc/driver/nvidia`` and the ``/dev/nvidia<N>`` nodes.

The CSV query asks for a header, so that output which is not an answer to the question (exit 0
with garbage) is recognised and rejected rather than believed. Fields an old driver does not
know (``compute_cap`` needs driver 510) are dropped and the query asked again. A row or field
that makes no sense is dropped with a warning; the other rows are kept.

``-L`` lists MIG devices under their GPU, indented or not (NVIDIA's own guide shows both), with
the old ``MIG-GPU-<uuid>/<gi>/<ci>`` UUIDs (drivers before 470) or the new ``MIG-<uuid>``. A
compute-instance profile (``1c.3g.20gb``) shares its GPU instance's memory with the other
compute instances of that GPU instance: see ``instance_memory_mb``.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from glidein_plugins.gpu import validate
from glidein_plugins.gpu.common import (
    Enumerated,
    Host,
    Report,
    missing_value,
    pci_bus_id,
    plural,
)
from glidein_plugins.node.commands import CommandResult
from glidein_plugins.spec.results import GpuDevice

SOURCE = "nvidia-smi"
PROC = "/proc/driver/nvidia"
QUERY_FIELDS = ("index", "uuid", "name", "pci.bus_id", "memory.total", "compute_cap",
                "driver_version", "mig.mode.current")
OPTIONAL_FIELDS = frozenset({"pci.bus_id", "compute_cap", "mig.mode.current"})
NO_DEVICES_EXIT = 6  # "No devices were found": the driver is loaded, no GPU is visible
_INVALID_FIELD = re.compile(r'Field "([^"]+)" is not a valid field to query')
_HEADER_UNIT = re.compile(r"\s*\[[^\]]*\]\s*$")
# a closing parenthesis may be missing (seen in published output)
_GPU_LINE = re.compile(r"^GPU\s+(\d+):\s+(.*?)\s+\(UUID:\s*(GPU-[^)\s]+)\)?\s*$")
_MIG_LINE = re.compile(r"^\s*MIG\s+(\S+)\s+Device\s+(\d+):\s+\(UUID:\s*(MIG-[^)\s]+)\)?\s*$")
_MIG_MEMORY = re.compile(r"(\d+)gb", re.IGNORECASE)
_MIG_SLICES = re.compile(r"^(?:(\d+)c\.)?(\d+)g\.", re.IGNORECASE)
_OLD_MIG_UUID = re.compile(r"^MIG-(GPU-[^/]+)/(\d+)/(\d+)$")
_CUDA_VERSION = re.compile(r"CUDA Version\s*:\s*(\d[\d.]*)|<cuda_version>\s*(\d[\d.]*)\s*<")
MAX_INDEX = 4096
_KERNEL_MODULE = re.compile(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)*)")
_GPU_UUID = re.compile(r"^GPU-[0-9a-fA-F-]{8,}$")
_DEVICE_NODE = re.compile(r"^nvidia(\d+)$")


def parse_query(text: str, fields: Sequence[str],
                notes: validate.Notes | None = None) -> list[dict[str, str]]:
    """Rows of ``nvidia-smi --query-gpu=FIELDS --format=csv,nounits`` output, each a
    ``field -> value`` dict ('' for ``[N/A]`` and its kind); ValueError when the output is not
    the CSV asked for. A row with the wrong number of columns or an absurd index is left out
    with a warning in ``notes``."""
    notes = [] if notes is None else notes
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
            notes.append(("warning", f"{SOURCE}: line {number} has {len(row)} columns, not "
                                     f"{len(fields)}: that GPU is left out"))
            continue
        values = {name: "" if missing_value(cell) else cell.strip()
                  for name, cell in zip(fields, row)}
        index = values.get("index", "")
        if not (index.isdigit() and len(index) < 6 and int(index) < MAX_INDEX):
            notes.append(("warning", f"{SOURCE}: line {number}: index "
                                     f"{validate.shown(index)} is not a GPU index: that GPU "
                                     "is left out"))
            continue
        found.append(values)
    return found


@dataclass(frozen=True)
class Listing:
    """``nvidia-smi -L``: each GPU's name and MIG devices (``(profile, MIG UUID)``) by GPU UUID,
    in order; how many MIG lines were seen; those with no ``GPU N:`` line before them."""

    names: dict[str, str] = field(default_factory=dict)
    instances: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    mig_lines: int = 0
    orphans: tuple[str, ...] = ()


def parse_list(text: str) -> Listing:
    """Parse ``nvidia-smi -L``."""
    listing = Listing()
    orphans: list[str] = []
    current: str | None = None
    for line in text.splitlines():
        gpu = _GPU_LINE.match(line)
        if gpu:
            current = gpu.group(3)
            listing.names[current] = gpu.group(2)
            listing.instances[current] = []
            continue
        mig = _MIG_LINE.match(line)
        if mig is None:
            continue
        if current is None:
            orphans.append(mig.group(3))
        else:
            listing.instances[current].append((mig.group(1), mig.group(3)))
    seen = sum(len(items) for items in listing.instances.values()) + len(orphans)
    return replace(listing, mig_lines=seen, orphans=tuple(orphans))


def mig_memory_mb(profile: str) -> int:
    """The memory of a MIG profile's GPU instance (``3g.20gb`` and ``1c.3g.20gb`` -> 20480
    MiB), 0 if it does not say."""
    match = _MIG_MEMORY.search(profile)
    return int(match.group(1)) * 1024 if match else 0


def instance_memory_mb(instances: Sequence[tuple[str, str]]) -> list[int]:
    """The memory each MIG device of one GPU can count on, in order.

    A compute-instance profile ``Nc.Mg.Xgb`` names a compute instance of N of its GPU
    instance's M slices; the GPU instance's X GB are shared by all its compute instances. With
    the old UUIDs (``MIG-GPU-<uuid>/<gi>/<ci>``) the sharers are known: each gets an equal
    part. With the new ones they are not: each is credited its compute share, N/M of X (what it
    keeps when the GPU instance is fully divided). A profile without ``Nc.`` is a whole GPU
    instance.
    """
    sharers = Counter(match.group(1, 2) for match in (
        _OLD_MIG_UUID.match(uuid) for _, uuid in instances) if match)
    memory = []
    for profile, uuid in instances:
        whole = mig_memory_mb(profile)
        old = _OLD_MIG_UUID.match(uuid)
        slices = _MIG_SLICES.match(profile)
        if old:
            memory.append(whole // sharers[old.group(1, 2)])
        elif slices and slices.group(1) and 0 < int(slices.group(1)) < int(slices.group(2)):
            memory.append(whole * int(slices.group(1)) // int(slices.group(2)))
        else:
            memory.append(whole)
    return memory


def parse_cuda_version(text: str) -> str:
    """The CUDA version ``nvidia-smi -q`` (or ``-q -x``, or its banner) states, '' if none."""
    match = _CUDA_VERSION.search(text)
    return (match.group(1) or match.group(2)) if match else ""


def _device(row: dict[str, str], notes: validate.Notes) -> GpuDevice:
    where = f"{SOURCE} GPU {row['index']}"
    gpu = GpuDevice("nvidia", row["name"], uuid=row["uuid"],
                    pci_bus_id=pci_bus_id(row.get("pci.bus_id", "")),
                    memory_mb=validate.memory(row["memory.total"], where, notes),
                    capability=row.get("compute_cap", ""),
                    driver_version=row["driver_version"], source=SOURCE)
    return validate.device(gpu, where, notes)


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
        rows = parse_query(result.stdout, fields, notes)
    except ValueError as exc:
        return Report(SOURCE, ran=True, ok=False, level="warning", notes=tuple(notes),
                      status=f"{where}: exit 0 but unusable output ({exc})"), []
    found = [Enumerated(_device(row, notes), int(row["index"])) for row in rows]
    mig_parents = [item for item, row in zip(found, rows)
                   if row.get("mig.mode.current", "").lower() == "enabled"]
    if mig_parents:
        found, more = _expand_mig(host, exe, found, mig_parents)
        notes += more
    drivers = sorted({item.device.driver_version for item in found
                      if item.device.driver_version})
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
    if not result.ok:
        return [item for item in found if item not in parents], [(
            "warning", f"{SOURCE} -L failed ({result.reason}): the MIG instances of "
                       f"{plural(len(parents), 'GPU')} in MIG mode are unknown, counted as none")]
    return expand(found, parents, parse_list(result.stdout))


def expand(found: list[Enumerated], parents: list[Enumerated],
           listing: Listing) -> tuple[list[Enumerated], list[tuple[str, str]]]:
    """``found`` with each GPU of ``parents`` replaced by its MIG devices in ``listing``; notes
    on MIG lines that belong to no GPU in MIG mode."""
    notes: list[tuple[str, str]] = []
    if listing.orphans:
        notes.append(("warning", f"{SOURCE} -L: {plural(len(listing.orphans), 'MIG line')} "
                                 f"with no GPU line before it ({listing.orphans[0]}, ...): "
                                 "ignored"))
    expanded: list[Enumerated] = []
    credited = 0
    for item in found:
        if item not in parents:
            expanded.append(item)
            continue
        gpu = item.device
        instances = listing.instances.get(gpu.uuid, [])
        if not instances:
            notes.append(("warning", f"GPU {item.index} ({gpu.uuid}) is in MIG mode but has no "
                                     "MIG instance: no job can use it"))
        credited += len(instances)
        expanded += [Enumerated(validate.device(
            replace(gpu, name=f"{gpu.name} MIG {profile}", uuid=uuid, memory_mb=memory, mig=True),
            f"{SOURCE} -L {uuid[:48]}", notes), item.index, gpu.uuid)
            for (profile, uuid), memory in zip(instances, instance_memory_mb(instances))]
    if credited != listing.mig_lines:
        notes.append(("warning", f"{SOURCE} -L shows {plural(listing.mig_lines, 'MIG device')}"
                                 f" but {credited} belong to the GPUs the query reports in MIG "
                                 "mode: the others are not counted"))
    return expanded, notes


def cuda_version(host: Host, exe: str) -> tuple[str, str]:
    """``(version, '')``: the CUDA version ``nvidia-smi -q`` states, or ``('', why not)``."""
    result = host.run([exe, "-q", "-d", "COMPUTE"])
    if not result.ok:
        return "", result.reason
    notes: validate.Notes = []
    version = validate.version(parse_cuda_version(result.stdout), f"{SOURCE} -q", notes)
    return version, "" if version else (notes[0][1] if notes else
                                        f"{SOURCE} -q states no CUDA version")


def _last_line(result: CommandResult) -> str:
    text = (result.stdout + "\n" + result.stderr).strip()
    return text.splitlines()[-1].strip() if text else "no output"


def kernel_driver_version(host: Host) -> str:
    """The NVIDIA kernel module's version, from /proc/driver/nvidia/version (or /sys)."""
    text = host.read(f"{PROC}/version") or ""
    match = _KERNEL_MODULE.search(text)
    version = match.group(1) if match else (host.read("/sys/module/nvidia/version") or "").strip()
    return version if validate.plausible_driver(version) else ""


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
        if uuid and not _GPU_UUID.match(uuid):
            notes.append(("warning", f"{PROC}/gpus/{bus}: GPU UUID {validate.shown(uuid)} is "
                                     "not one: dropped"))
        device = validate.device(GpuDevice(
            "nvidia", info.get("Model", ""), uuid=uuid if _GPU_UUID.match(uuid) else "",
            pci_bus_id=bus_id, driver_version=version, source=PROC), f"{PROC}/gpus/{bus}", notes)
        found.append(Enumerated(device, len(found)))
        minor = info.get("Device Minor", "")
        if minor.isdigit() and len(minor) < 7:
            minors[bus_id] = int(minor)
        elif minor:
            notes.append(("warning", f"{PROC}/gpus/{bus}: Device Minor "
                                     f"{validate.shown(minor)} is not one: ignored"))
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
