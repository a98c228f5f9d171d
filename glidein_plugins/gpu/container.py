"""What a job's container needs for the GPUs setup found: for the job-launch phase.

- ``--nv`` only when NVIDIA devices are usable, ``--rocm`` only for AMD ones (both only on a
  node where both vendors' devices are usable): each flag binds the vendor's user-space
  libraries and device nodes, and neither is harmless on a node without that vendor's driver.
- The slot's assignment must reach the job: ``--cleanenv``/``-C`` drop the environment, and
  ``--nv`` alone exposes every GPU of the node, so the variables below are passed explicitly
  (as ``APPTAINERENV_X`` and ``SINGULARITYENV_X``), with the values of the job's own
  environment at launch (the startd sets them per slot).
- ``/etc/OpenCL/vendors`` is bound by the ``binds`` plugin whenever GPUs were found.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (job start imports this)
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from glidein_plugins.spec.results import GpuDevice

FLAGS = (("nvidia", "--nv"), ("amd", "--rocm"))
PRESERVED = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "GPU_DEVICE_ORDINAL",
             "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
             "_CONDOR_AssignedGPUs")
ENV_PREFIXES = ("APPTAINERENV_", "SINGULARITYENV_")


def runtime_flags(devices: Iterable[GpuDevice]) -> tuple[str, ...]:
    """The runtime's GPU flags for the usable ``devices``."""
    vendors = {device.vendor for device in devices}
    return tuple(flag for vendor, flag in FLAGS if vendor in vendors)


def preserved(environ: Mapping[str, str]) -> dict[str, str]:
    """The GPU assignment variables set in ``environ``."""
    return {name: environ[name] for name in PRESERVED if name in environ}


def container_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``APPTAINERENV_X``/``SINGULARITYENV_X`` for every preserved variable: what survives
    ``--cleanenv``."""
    return {prefix + name: value for name, value in preserved(environ).items()
            for prefix in ENV_PREFIXES}
