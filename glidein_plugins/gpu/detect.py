"""Ask every GPU source at once, merge their answers, say where they disagree, and keep what the
slot's assignment lets this glidein use.

Sources, all concurrent, each command bounded by the timeout: ``nvidia-smi``,
``condor_gpu_discovery``, ``rocm-smi`` (where found), and the files the kernel drivers publish
(``/proc/driver/nvidia``, ``/dev/nvidia<N>``, the KFD topology, ``/dev/kfd``, ``/dev/dri``).

NVIDIA devices come from ``nvidia-smi`` (MIG instances replacing their GPU), completed by
``condor_gpu_discovery`` (exact MIG memory, the capability on old drivers); without a usable
``nvidia-smi`` from ``condor_gpu_discovery``; without either from ``/proc`` and ``/dev``
(name, UUID and bus only). AMD devices come from the KFD topology completed by ``rocm-smi``,
usable only with ``/dev/kfd`` and their render node. Counts that disagree between sources are
reported as warnings, never silently reconciled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from glidein_plugins.gpu import amd, assignment, condor, nvidia
from glidein_plugins.gpu.common import (
    Enumerated,
    Host,
    Report,
    Tool,
    in_dirs,
    locate,
    plural,
    search_path,
    uuid_key,
)
from glidein_plugins.node.background import Pending
from glidein_plugins.spec.results import GpuDevice

NVIDIA_SMI, CONDOR, ROCM_SMI, LDCONFIG = (
    "nvidia-smi", "condor_gpu_discovery", "rocm-smi", "ldconfig")
TOOLS = (NVIDIA_SMI, CONDOR, ROCM_SMI)
SETTING_KEYS = {NVIDIA_SMI: "nvidia_smi", CONDOR: "condor_gpu_discovery",
                ROCM_SMI: "rocm_smi", LDCONFIG: "ldconfig"}
VENDORS = ("nvidia", "amd", "other")
_SHOWN = 3  # UUIDs quoted in a disagreement


@dataclass(frozen=True)
class Detection:
    """What detection found: the usable devices, how many GPUs the node has before the
    assignment and usability checks, why none is usable, the CUDA version HTCondor saw, the
    trace lines (``(level, message)`` in order), every source's report, and the nvidia-smi
    that answered (to ask it for the CUDA version when libcuda cannot)."""

    devices: tuple[GpuDevice, ...]
    present: int
    reason: str
    cuda_version: str
    notes: tuple[tuple[str, str], ...]
    reports: tuple[Report, ...]
    nvidia_smi: str = ""

    @property
    def kernel_driver(self) -> bool:
        """Whether an NVIDIA kernel driver is loaded (a reason to look for libcuda)."""
        return any(report.source == nvidia.PROC and report.ran for report in self.reports)


def candidates(host: Host, name: str, setting: str | None,
               condor_dir: str = "") -> tuple[list[str], str]:
    """Where to look for tool ``name``, and what to say when it is not there.

    ``setting``: None to search, '' to skip the tool, else its path.
    """
    if setting is not None:
        if not setting:
            return [], f"not used (gpus setting {SETTING_KEYS[name]} is empty)"
        return [setting], f"{setting} is not an executable file"
    directories = search_path(host.environ)
    where = "on PATH"
    if name == CONDOR:
        local = [f"{condor_dir}/libexec", f"{condor_dir}/usr/libexec/condor",
                 f"{condor_dir}/libexec/condor", f"{condor_dir}/bin"] if condor_dir else []
        system = [host.path("/usr/libexec/condor"), host.path("/usr/lib/condor/libexec")]
        directories = local + directories + system
        where = (f"in CONDOR_DIR ({condor_dir}) or " if condor_dir else "") + \
            "on PATH or in /usr/libexec/condor" + ("" if condor_dir else " (CONDOR_DIR unset)")
    elif name == ROCM_SMI:
        roots = dict.fromkeys(filter(None, (host.environ.get("ROCM_PATH"), amd.ROCM_DEFAULT)))
        directories += [host.path(f"{root}/bin") for root in roots]
        where = f"on PATH or in {', '.join(f'{root}/bin' for root in roots)}"
    elif name == LDCONFIG:
        directories += [host.path("/sbin"), host.path("/usr/sbin")]
        where = "on PATH or in /sbin, /usr/sbin"
    return in_dirs(name, directories), f"not found {where}"


def find_tools(host: Host, settings: Mapping[str, str | None], names: Sequence[str],
               condor_dir: str = "") -> dict[str, Tool]:
    """Every tool in ``names`` looked for at once."""
    wanted: dict[str, list[str]] = {}
    why: dict[str, str] = {}
    for name in names:
        wanted[name], why[name] = candidates(host, name, settings.get(SETTING_KEYS[name]),
                                             condor_dir)
    return locate(wanted, host, why)


def detect(host: Host, tools: Mapping[str, Tool]) -> Detection:
    """Run the sources concurrently and merge what they found."""
    missing = {name: Report(name, status=f"{name}: {tool.why}")
               for name, tool in tools.items() if not tool.path}
    smi_job = (Pending(nvidia.from_nvidia_smi, host, tools[NVIDIA_SMI].path)
               if tools[NVIDIA_SMI].path else None)
    condor_job = (Pending(condor.from_discovery, host, tools[CONDOR].path)
                  if tools[CONDOR].path else None)
    rocm_job = (Pending(amd.from_rocm_smi, host, tools[ROCM_SMI].path)
                if tools[ROCM_SMI].path else None)
    proc_job = Pending(nvidia.from_proc, host)
    kfd_job = Pending(amd.from_kfd, host)
    minors = nvidia.device_minors(host)
    kfd_device = host.exists(amd.KFD_DEVICE)
    dri = host.listdir("/dev/dri")
    smi, smi_found = smi_job.result() if smi_job else (missing[NVIDIA_SMI], [])
    discovery = condor_job.result() if condor_job else missing[CONDOR]
    rocm = rocm_job.result() if rocm_job else missing[ROCM_SMI]
    proc, proc_found, proc_minors = proc_job.result()
    kfd, kfd_found, render = kfd_job.result()
    merger = _Merger(discovery)
    found = {
        "nvidia": merger.nvidia(smi, smi_found, proc, proc_found=proc_found,
                                proc_minors=proc_minors, minors=minors),
        "amd": merger.amd(kfd, kfd_found, render, rocm=rocm, kfd_device=kfd_device, dri=dri),
        "other": [Enumerated(gpu, index) for index, gpu in enumerate(
            merger.condor_devices("other"))],
    }
    present = sum(len(items) for items in found.values()) + merger.unusable
    usable: list[GpuDevice] = []
    for vendor in VENDORS:
        items = [item for item in found[vendor] if item not in merger.dropped]
        if not items:
            continue
        kept, note = assignment.select(assignment.for_vendor(host.environ, vendor), items)
        if note:
            merger.note("warning" if "names no device" in note else "info", note)
            if not kept:
                merger.causes.append(note)
        usable += [item.device for item in kept]
    dev_report = Report("/dev", ran=bool(minors), ok=bool(minors), status=(
        "/dev: cannot be listed" if minors is None else f"/dev: {_nodes(minors)}" if minors
        else "/dev: no nvidia<N> device node"))
    kfd_device_report = Report(amd.KFD_DEVICE, ran=kfd_device, ok=kfd_device,
                               status=f"{amd.KFD_DEVICE}: {'present' if kfd_device else 'absent'}")
    reports = (smi, discovery, proc, dev_report, kfd, kfd_device_report, rocm)
    if usable:
        reason = ""
        names = sorted({gpu.name for gpu in usable if gpu.name})
        merger.note("info", f"usable: {plural(len(usable), 'GPU')}"
                    + (f" ({', '.join(names)})" if names else ""))
    elif present:
        reason = (f"{plural(present, 'GPU')} on this node, none usable by this glidein: "
                  + "; ".join(merger.causes))
        merger.note("info", reason)
    else:
        seen = any(report.devices for report in reports)  # and yet none usable: contradictions
        reason = ("no usable GPU: " if seen else "no GPU found: ") + "; ".join(
            report.status for report in reports)
        merger.note("info", reason)
    notes = [(report.level, report.status) for report in reports if report.ran] + [
        note for report in reports for note in report.notes] + merger.notes
    return Detection(tuple(usable), present, reason, discovery.extra.get("cuda_version", ""),
                     tuple(notes), reports, tools[NVIDIA_SMI].path if smi.ok else "")


class _Merger:
    """Merges the sources' reports vendor by vendor, collecting the trace lines, the devices
    present but not usable, and why."""

    def __init__(self, discovery: Report) -> None:
        self.discovery = discovery
        self.notes: list[tuple[str, str]] = []
        self.causes: list[str] = []  # why present devices are not usable
        self.dropped: list[Enumerated] = []
        self.unusable = 0

    def note(self, level: str, message: str) -> None:
        self.notes.append((level, message))

    def condor_devices(self, vendor: str) -> list[GpuDevice]:
        if not self.discovery.ok:
            return []
        return [gpu for gpu in self.discovery.devices if gpu.vendor == vendor]

    # -- NVIDIA --------------------------------------------------------------------------

    def nvidia(self, smi: Report, smi_found: list[Enumerated], proc: Report, *,
               proc_found: list[Enumerated], proc_minors: Mapping[str, int],
               minors: list[int] | None) -> list[Enumerated]:
        from_condor = self.condor_devices("nvidia")
        if smi.ok:
            found = [replace(item, device=_completed(item.device, from_condor))
                     for item in smi_found]
            physical = int(smi.extra.get("physical", "0"))
            self._compare_counts(NVIDIA_SMI, physical, proc, proc_found, minors)
            if self.discovery.ok:
                self._compare_devices(found, from_condor)
            return found
        why = "" if not smi.ran else f" ({NVIDIA_SMI} failed)"
        if from_condor:
            self.note("warning" if smi.ran else "info",
                      f"NVIDIA GPUs from {CONDOR}{why}: {plural(len(from_condor), 'device')}")
            driver = proc.extra.get("driver_version", "")  # HTCondor does not say
            models = {item.device.name for item in proc_found if item.device.name}
            model = f"{models.pop()} MIG" if len(models) == 1 else ""  # one model: MIG's parent
            return [Enumerated(replace(gpu, driver_version=gpu.driver_version or driver,
                                       name=gpu.name or (model if gpu.mig else "")), index)
                    for index, gpu in enumerate(from_condor)]
        return self._fallback(smi, proc, proc_found, proc_minors, minors)

    def _fallback(self, smi: Report, proc: Report, proc_found: list[Enumerated],
                  proc_minors: Mapping[str, int],
                  minors: list[int] | None) -> list[Enumerated]:
        """The kernel driver's view: /proc/driver/nvidia, restricted to the GPUs whose
        /dev/nvidia<N> node exists (in a container only the passed GPUs have one)."""
        nodes = minors or []
        if proc_found and minors is not None and len(nodes) != len(proc_found):
            self.note("warning", f"{nvidia.PROC} lists {plural(len(proc_found), 'GPU')} but "
                                 f"/dev has {_nodes(nodes)}")
        if proc_found:
            found = proc_found
            if nodes:
                found = [item for item in proc_found
                         if proc_minors.get(item.device.pci_bus_id, -1) in nodes
                         or item.device.pci_bus_id not in proc_minors]
                for item in proc_found:
                    if item not in found:
                        self.unusable += 1
                        self.causes.append(f"GPU {item.device.pci_bus_id} has no /dev/nvidia"
                                           f"{proc_minors[item.device.pci_bus_id]} node")
        else:
            found = [Enumerated(GpuDevice("nvidia", "", source=f"/dev/nvidia{minor}"), index)
                     for index, minor in enumerate(nodes)]
        if found:
            level = "warning" if smi.ran else "info"
            self.note(level, f"NVIDIA GPUs from the kernel driver ({nvidia.PROC}, /dev)"
                             + (f" because {NVIDIA_SMI} failed" if smi.ran else "")
                             + f": {plural(len(found), 'GPU')}; memory and compute "
                             "capability unknown")
        return found

    def _compare_counts(self, name: str, count: int, proc: Report,
                        proc_found: Sequence[Enumerated], minors: list[int] | None) -> None:
        if proc.ran and len(proc_found) != count:
            self.note("warning", f"{name} reports {plural(count, 'GPU')} but {nvidia.PROC} "
                                 f"lists {len(proc_found)}")
        if minors is not None and len(minors) != count:
            self.note("warning", f"{name} reports {plural(count, 'GPU')} but /dev has "
                                 f"{_nodes(minors)}")

    def _compare_devices(self, found: Sequence[Enumerated],
                         from_condor: Sequence[GpuDevice]) -> None:
        ours = {uuid_key(item.device.uuid): item.device.uuid for item in found}
        theirs = {uuid_key(gpu.uuid): gpu.uuid for gpu in from_condor}
        if "" in ours or "" in theirs:  # without UUIDs only the counts can be compared
            if len(found) != len(from_condor):
                self.note("warning", f"{NVIDIA_SMI} shows {plural(len(found), 'device')}, "
                                     f"{CONDOR} {len(from_condor)}")
            return
        if ours.keys() != theirs.keys():
            only_ours = [ours[key] for key in ours if key not in theirs][:_SHOWN]
            only_theirs = [theirs[key] for key in theirs if key not in ours][:_SHOWN]
            self.note("warning", f"{NVIDIA_SMI} and {CONDOR} disagree: "
                                 f"{len(found)} vs {len(from_condor)} devices"
                                 + (f"; only {NVIDIA_SMI}: {', '.join(only_ours)}"
                                    if only_ours else "")
                                 + (f"; only {CONDOR}: {', '.join(only_theirs)}"
                                    if only_theirs else ""))

    # -- AMD -----------------------------------------------------------------------------

    def amd(self, kfd: Report, kfd_found: list[Enumerated], render: Mapping[int, int], *,
            rocm: Report, kfd_device: bool, dri: list[str] | None) -> list[Enumerated]:
        if kfd_found:
            found = amd.enrich(kfd_found, rocm) if rocm.ok else kfd_found
            if rocm.ok and len(rocm.devices) != len(kfd_found):
                self.note("warning", f"{amd.KFD_SOURCE} lists {plural(len(kfd_found), 'GPU')} "
                                     f"but {ROCM_SMI} {len(rocm.devices)}")
        elif rocm.ok and rocm.devices:
            found = [Enumerated(gpu, index) for index, gpu in enumerate(rocm.devices)]
        else:
            found = [Enumerated(gpu, index) for index, gpu in enumerate(
                self.condor_devices("amd"))]
        if found and not kfd_device:
            self.note("warning", f"{plural(len(found), 'AMD GPU')} but {amd.KFD_DEVICE} is "
                                 "missing: ROCm cannot use them here")
            self.causes.append(f"{amd.KFD_DEVICE} is missing")
            self.dropped += found
            return found
        for item in found:
            minor = render.get(item.index)
            if dri is not None and minor is not None and f"renderD{minor}" not in dri:
                self.note("warning", f"AMD GPU {item.index} ({item.device.pci_bus_id}) has no "
                                     f"/dev/dri/renderD{minor}: not usable here")
                self.causes.append(f"/dev/dri/renderD{minor} is missing")
                self.dropped.append(item)
        return found


def _completed(device: GpuDevice, others: Sequence[GpuDevice]) -> GpuDevice:
    """``device`` with what condor_gpu_discovery knows better: a MIG instance's exact memory
    (never more than nvidia-smi's share of a GPU instance its compute instances share), the
    capability an old nvidia-smi does not report."""
    other = next((gpu for gpu in others if condor.same_device(device, gpu)), None)
    if other is None:
        return device
    memory = device.memory_mb
    if other.memory_mb and (not memory or device.mig):
        memory = min(memory, other.memory_mb) if memory else other.memory_mb
    return replace(device, memory_mb=memory, capability=device.capability or other.capability,
                   name=device.name or other.name)


def _nodes(minors: Sequence[int]) -> str:
    shown = ", ".join(f"nvidia{minor}" for minor in minors[:8])
    return f"{plural(len(minors), 'GPU device node')}" + (f" ({shown})" if minors else "")
