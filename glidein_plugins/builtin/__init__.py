"""Built-in plugins, registered under short names so an entry can disable any of them.

``BUILTINS`` maps a name to its module and whether it runs unless an entry disables it
(``True``) or only when an entry enables it (``False``). Modules are imported only when used.
"""

from __future__ import annotations

BUILTINS: dict[str, tuple[str, bool]] = {
    "mode": ("glidein_plugins.builtin.mode", True),
    "images": ("glidein_plugins.builtin.images", True),
    "discovery": ("glidein_plugins.builtin.discovery", True),
    "probe": ("glidein_plugins.builtin.probe", True),
    "binds": ("glidein_plugins.builtin.binds", True),
    "cvmfs": ("glidein_plugins.builtin.cvmfs", True),
    "gpus": ("glidein_plugins.builtin.gpus", True),
    "singularity": ("glidein_plugins.builtin.singularity", True),
    "launch": ("glidein_plugins.builtin.launch", True),
    # the reference VO plugins: only on the entries that enable them
    "osg": ("glidein_plugins.vo.osg", False),
    "cms": ("glidein_plugins.vo.cms", False),
    "atlas": ("glidein_plugins.vo.atlas", False),
}
