"""Built-in plugin ``gpus``: detect the GPUs this glidein may use and the libraries GPU jobs need,
and advertise them.

Detection asks ``nvidia-smi``, ``condor_gpu_discovery`` and ``rocm-smi`` (where found) and the
kernel drivers' files, all at once, each command bounded by the ``timeout`` setting; sources
that disagree are reported in the trace; the slot's assignment (``CUDA_VISIBLE_DEVICES`` & co.)
decides which devices are usable. Every attribute is published on every node, GPU or not;
``HAS_GPU_REASON`` says why there is no usable GPU (every source tried and what it said).

Settings (``settings: {gpus: {...}}`` in the factory config):

- ``timeout`` (20): seconds each external command may take;
- ``root`` (``/``): where the node's ``/proc``, ``/sys``, ``/dev``, ``/etc``, ``/opt`` are;
- ``nvidia_smi``, ``condor_gpu_discovery``, ``rocm_smi``, ``ldconfig``: the tool's path
  instead of searching for it, or ``''`` not to use it;
- ``nvliblist``: the runtime's ``nvliblist.conf`` (default: found next to the runtime);
- ``cuda_probe`` (true): ask libcuda for the CUDA driver API version (in a bounded process).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from glidein_plugins import hookimpl
from glidein_plugins.config.options import Option, Options
from glidein_plugins.gpu import detect as gpu_detect
from glidein_plugins.gpu import libraries as libs
from glidein_plugins.gpu import nvidia as gpu_nvidia
from glidein_plugins.gpu import validate
from glidein_plugins.gpu.common import Host
from glidein_plugins.spec import checks
from glidein_plugins.spec.context import Context
from glidein_plugins.spec.results import Attribute, Facts, GpuDevice, Library, flag, one_line

__all__ = ["glidein_attributes_contribute", "glidein_gpu_detect", "glidein_libraries_detect"]

PLUGIN = "gpus"
_TOOL = "the tool's path instead of searching for it ('': do not use it)"
SETTINGS = Options(
    Option("timeout", 20.0, checks.seconds,
           "seconds each external command may take (capped by the setup's budget)"),
    Option("root", "/", checks.absolute_path, "where the node's /proc, /sys, /dev, /etc and "
           "/opt are (tests use a fake tree)"),
    *(Option(name, None, checks.optional_path, _TOOL)
      for name in ("nvidia_smi", "condor_gpu_discovery", "rocm_smi", "ldconfig")),
    Option("nvliblist", None, checks.optional_path,
           "the runtime's nvliblist.conf (default: next to the runtime)"),
    Option("cuda_probe", True, checks.boolean, "ask libcuda for the CUDA driver API version"),
)
_CAPABILITY = re.compile(r"^(\d+)\.(\d+)$")
NOT_DETECTED = "GPU detection did not complete (see the gpu phase in the trace)"



def _remember(context: Context, detection: gpu_detect.Detection) -> None:
    """Keep what detection found (why there are no devices, too) for the attributes hook."""
    context.state(PLUGIN)["detection"] = detection


def _recall(context: Context) -> gpu_detect.Detection | None:
    detection: gpu_detect.Detection | None = context.state(PLUGIN).get("detection")
    return detection


def settings(context: Context) -> dict[str, Any]:
    """The entry's ``gpus`` settings over the defaults; a wrong one is a Config failure naming
    the file, line and key."""
    return checks.plugin_settings(context, PLUGIN, SETTINGS)


def _host(context: Context, options: dict[str, Any]) -> Host:
    return Host(context.run, context.environ, str(options["root"]), float(options["timeout"]),
                context.quiet_run)


@hookimpl(trylast=True)
def glidein_gpu_detect(context: Context) -> list[GpuDevice]:
    options = settings(context)
    host = _host(context, options)
    condor_dir = (context.get("CONDOR_DIR") or context.environ.get("CONDOR_DIR") or "").strip()
    tools = gpu_detect.find_tools(host, options, gpu_detect.TOOLS, condor_dir)
    detection = gpu_detect.detect(host, tools)
    for level, message in detection.notes:
        context.note(message, level)
    _remember(context, detection)
    return list(detection.devices)


@hookimpl(trylast=True)
def glidein_libraries_detect(context: Context, facts: Facts) -> list[Library]:
    options = settings(context)
    host = _host(context, options)
    detection = _recall(context)
    found = libs.opencl_icds(host)
    if found:
        context.note(f"OpenCL ICDs in {libs.OPENCL_VENDORS}: "
                     + ", ".join(lib.name.split(":", 1)[1] for lib in found))
    cache = _ld_cache(context, host, options)
    nvidia = (any(gpu.vendor == "nvidia" for gpu in facts.gpus)
              or (detection is not None and detection.kernel_driver)
              or any(name.startswith("libcuda.so") for name in cache))
    if nvidia:
        runtime = facts.runtime.candidate.path if facts.runtime is not None else ""
        found += _nvidia_libraries(context, host, options, cache, runtime)
        found += _cuda_versions(context, host, options, cache, detection)
    notes: validate.Notes = []
    rocm = libs.rocm_version(host, notes)
    for level, message in notes:
        context.note(message, level)
    if rocm is not None:
        context.note(f"ROCm {rocm.version} ({rocm.source})")
        found.append(rocm)
    return found


def _ld_cache(context: Context, host: Host, options: dict[str, Any]) -> dict[str, str]:
    tool = gpu_detect.find_tools(host, options, (gpu_detect.LDCONFIG,))[gpu_detect.LDCONFIG]
    if not tool.path:
        context.note(f"ldconfig: {tool.why}: NVIDIA libraries not looked for", "warning")
        return {}
    result = host.run([tool.path, "-p"])
    notes: validate.Notes = []
    cache = libs.parse_ld_cache(result.stdout, notes) if result.ok else {}
    for level, message in notes:
        context.note(message, level)
    return cache


def _nvidia_libraries(context: Context, host: Host, options: dict[str, Any],
                      cache: dict[str, str], runtime: str) -> list[Library]:
    """The NVIDIA libraries the runtime's ``--nv`` would bind, as its nvliblist.conf names
    them (a short built-in list without one), found in the ld cache."""
    configured = options["nvliblist"]
    where, text = libs.read_first([configured] if configured else
                                  libs.nvliblist_paths(runtime, host))
    wanted = libs.parse_nvliblist(text) if text is not None else list(libs.ESSENTIAL_NVIDIA)
    found, missing = libs.nvidia_libraries(host, cache, wanted)
    listed = where or "no nvliblist.conf found: the essential ones"
    context.note(f"NVIDIA libraries for --nv ({listed}): {len(found)} of {len(wanted)} in the "
                 "ld cache")
    essential = [name for name in libs.ESSENTIAL_NVIDIA if name in missing]
    if essential:
        context.note(f"not in the ld cache: {', '.join(essential)}: --nv cannot give containers "
                     "what CUDA needs", "warning")
    return found


def _cuda_versions(context: Context, host: Host, options: dict[str, Any], cache: dict[str, str],
                   detection: gpu_detect.Detection | None) -> list[Library]:
    """The CUDA driver API version from libcuda itself, and as condor_gpu_discovery saw it;
    from ``nvidia-smi -q`` when neither can say (libcuda not loadable by the pilot: a
    container, a driver-only install). Each ``Library`` names its source."""
    found = []
    probed = why = ""
    if options["cuda_probe"]:
        probed, why = libs.cuda_driver_version(host)
        if probed:
            context.note(f"CUDA driver API {probed} (libcuda cuDriverGetVersion)")
            found.append(Library("cuda", probed, cache.get("libcuda.so.1", ""),
                                 source="libcuda cuDriverGetVersion"))
    condor = detection.cuda_version if detection is not None else ""
    if condor:
        found.append(Library("cuda", condor, source=gpu_detect.CONDOR))
        if probed and probed != condor:
            context.note(f"libcuda says CUDA {probed}, {gpu_detect.CONDOR} {condor}", "warning")
    smi = detection.nvidia_smi if detection is not None else ""
    if not probed and not condor and smi:
        version, smi_why = gpu_nvidia.cuda_version(host, smi)
        if version:
            context.note(f"CUDA driver API {version} from {gpu_nvidia.SOURCE} -q"
                         + (f" (libcuda: {why})" if why else ""))
            found.append(Library("cuda", version, source=f"{gpu_nvidia.SOURCE} -q"))
            return found
        why = "; ".join(filter(None, (why, smi_why)))
    if not probed and not condor:
        context.note(f"CUDA driver API version unknown: {why or 'libcuda not asked'}",
                     "warning")
    return found


def _version(libraries: Sequence[Library], name: str) -> str:
    return next((lib.version for lib in libraries if lib.name == name and lib.version), "")


def _capability(gpus: Sequence[GpuDevice]) -> str:
    """The smallest CUDA compute capability (``8.0`` < ``9.0``), then the AMD ISAs
    (``gfx90a``) if any, comma-separated."""
    known = {gpu.capability for gpu in gpus if gpu.capability}
    numeric = [text for text in known if _CAPABILITY.match(text)]
    smallest = [min(numeric, key=lambda text: tuple(int(part) for part in text.split(".")))
                ] if numeric else []
    return ",".join(smallest + sorted(known - set(numeric)))


def _listed(values: Sequence[str]) -> str:
    return one_line(",".join(sorted({value for value in values if value})))


@hookimpl(trylast=True)
def glidein_attributes_contribute(context: Context, facts: Facts) -> list[Attribute]:
    gpus = facts.gpus
    detection = _recall(context)
    vendors = sorted({gpu.vendor for gpu in gpus})
    reason = detection.reason if detection is not None else NOT_DETECTED
    cuda = _version(facts.libraries, "cuda")
    rocm = _version(facts.libraries, "rocm")
    described = {
        "GLIDEIN_GPU_DEVICE_NAME": _listed([gpu.name for gpu in gpus]),
        "GLIDEIN_GPU_CAPABILITY": one_line(_capability(gpus)),
        "GLIDEIN_GPU_DRIVER_VERSION": _listed([gpu.driver_version for gpu in gpus]),
        "GLIDEIN_CUDA_DRIVER_VERSION": one_line(cuda),
        "GLIDEIN_ROCM_VERSION": one_line(rocm),
    }
    memory = [gpu.memory_mb for gpu in gpus if gpu.memory_mb > 0]
    attributes = [
        *flag("HAS_GPU", bool(gpus), reason),
        Attribute.integer("GLIDEIN_GPU_COUNT", len(gpus)),
        Attribute.string("GLIDEIN_GPU_VENDOR", "none" if not vendors else
                         vendors[0] if len(vendors) == 1 else "mixed"),
        *(Attribute.string(name, text) for name, text in described.items() if text),
        Attribute.boolean("HAS_CUDA", "nvidia" in vendors and bool(cuda)),
        Attribute.boolean("HAS_ROCM", "amd" in vendors),
        Attribute.boolean("HAS_OPENCL", bool(gpus) and any(
            lib.name.startswith("opencl:") for lib in facts.libraries)),
        Attribute.boolean("GLIDEIN_GPU_MIG", any(gpu.mig for gpu in gpus)),
    ]
    if memory:
        attributes.append(Attribute.integer("GLIDEIN_GPU_MEMORY_MB", min(memory)))
    return attributes
