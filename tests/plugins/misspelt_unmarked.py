"""Broken on purpose: an unmarked ``glidein_*`` function with a typo. Unmarked ``glidein_*``
functions count as implementations, so the typo is caught instead of never running."""

from __future__ import annotations

from glidein_plugins import GpuDevice


def glidein_gpu_detec() -> list[GpuDevice]:
    return [GpuDevice("nvidia", "Misspelt GPU", uuid="GPU-misspelt")]
