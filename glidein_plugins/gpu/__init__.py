"""GPU and library detection for the built-in ``gpus`` plugin.

- ``common``: the node as the sources see it (files below a root, bounded commands), reports.
- ``nvidia``: ``nvidia-smi``, ``/proc/driver/nvidia``, ``/dev/nvidia<N>``.
- ``condor``: ``condor_gpu_discovery -properties`` (nested and not-nested output).
- ``amd``: the KFD topology in ``/sys``, ``/dev/kfd``, ``rocm-smi``.
- ``assignment``: ``CUDA_VISIBLE_DEVICES`` and the other slot assignment variables.
- ``detect``: every source at once, merged and cross-checked.
- ``libraries``: libcuda's CUDA version, the libraries ``--nv`` injects, OpenCL ICDs, ROCm.
- ``container``: what the job's container needs (``--nv``/``--rocm``, variables to keep).
"""
