"""The ``<files>`` and ``<attrs>`` of one entry for glideinWMS.xml (``glidein-plugins
factory-xml``).

The tarball is untarred, only where ``GLIDEIN_PLUGINS_ENABLED`` is 1, into the flat directory
``glidein_plugins`` beside the scripts (its path published as ``GLIDEIN_PLUGINS_DIR``); the
setup script runs as an entry script and finds the package there, the job wrapper wraps every
job, and the periodic script re-checks the node as a startd cron job without a prefix.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from glidein_plugins.config.model import EntryConfig

ENABLE_ATTR = "GLIDEIN_PLUGINS_ENABLED"
DIR_ATTR = "GLIDEIN_PLUGINS_DIR"
UNTAR_DIR = "glidein_plugins"
SETUP = "hooks/glidein_plugins_setup.sh"
WRAPPER = "hooks/glidein_plugins_wrapper.sh"
PERIODIC = "hooks/glidein_plugins_periodic.sh"
PERIOD_SECONDS = 600
# entry attributes the reference's singularity_setup.sh reads: passed on when configured
PASSED_ON = ("GLIDEIN_SINGULARITY_REQUIRE", "GLIDEIN_Singularity_Use", "SINGULARITY_BIN",
             "GLIDEIN_SINGULARITY_BINDPATH", "SINGULARITY_IMAGES_DICT", "GLIDEIN_REQUIRED_OS")


@dataclass(frozen=True)
class Layout:
    """Where the factory keeps the files: the tarball, and the unpacked tarball whose
    ``hooks/`` the scripts are shipped from."""

    tarball: str
    unpacked_dir: str


def _attr(name: str, value: str, kind: str = "string") -> ET.Element:
    return ET.Element("attr", {
        "name": name, "value": value, "type": kind, "const": "True", "parameter": "True",
        "publish": "False", "glidein_publish": "False", "job_publish": "False"})


def elements(entry: EntryConfig, layout: Layout) -> tuple[ET.Element, ET.Element]:
    """The entry's ``<files>`` and ``<attrs>``."""
    files = ET.Element("files")
    tarball = ET.SubElement(files, "file", {
        "absfname": layout.tarball, "relfname": layout.tarball.rsplit("/", 1)[-1],
        "const": "True", "executable": "False", "untar": "True", "wrapper": "False"})
    ET.SubElement(tarball, "untar_options", {
        "cond_attr": ENABLE_ATTR, "dir": UNTAR_DIR, "absdir_outattr": DIR_ATTR})
    hooks = layout.unpacked_dir.rstrip("/")
    for script, extra in ((SETUP, {"executable": "True"}),
                          (WRAPPER, {"executable": "False", "wrapper": "True"}),
                          (PERIODIC, {"executable": "True", "period": str(PERIOD_SECONDS),
                                      "prefix": "NOPREFIX"})):
        ET.SubElement(files, "file", {"absfname": f"{hooks}/{script}", "const": "True",
                                      "untar": "False", "wrapper": "False", **extra})
    attrs = ET.Element("attrs")
    attrs.append(_attr(ENABLE_ATTR, "1", "int"))
    for name in PASSED_ON:
        setting = entry.attributes.get(name)
        if setting is not None and setting.value not in (None, ""):
            attrs.append(_attr(name, str(setting.value)))
    return files, attrs


def render(entry: EntryConfig, layout: Layout) -> str:
    """The XML text to paste into the entry's ``<entry>`` element: ``<attrs>`` then
    ``<files>`` (merge them with the entry's own)."""
    files, attrs = elements(entry, layout)
    parts = []
    for element in (attrs, files):
        ET.indent(element, "  ")
        parts.append(ET.tostring(element, encoding="unicode"))
    return "\n".join(parts) + "\n"
