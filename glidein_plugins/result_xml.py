"""The GlideinWMS result XML (``otrb_output.xml``, OSGTestResult 4.3.1) that every setup script
leaves in the directory it started in. Status is OK exactly when the exit code is 0."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Mapping, Optional
from xml.sax.saxutils import escape, quoteattr

from glidein_plugins import atomic
from glidein_plugins.results import Failure

FILE_NAME = "otrb_output.xml"
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: object) -> str:
    return _XML_INVALID.sub("?", str(text))


def _timestamp() -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return stamp[:-2] + ":" + stamp[-2:]  # +hhmm -> +hh:mm


def render(script_id: str, failure: Optional[Failure], metrics: Mapping[str, str]) -> str:
    """The XML text: OK with metrics, or ERROR with the failure type, metrics and detail."""
    stamp = quoteattr(_timestamp())

    def metric(name: str, value: object) -> str:
        return (f"    <metric name={quoteattr(_clean(name))} ts={stamp} uri=\"local\">"
                f"{escape(_clean(value))}</metric>")

    lines = ['<?xml version="1.0"?>',
             f'<OSGTestResult id={quoteattr(_clean(script_id))} version="4.3.1">',
             "  <result>",
             f"    <status>{'ERROR' if failure else 'OK'}</status>"]
    if failure:
        lines.append(metric("failure", failure.type.value))
    lines += [metric(name, value) for name, value in metrics.items()]
    lines.append("  </result>")
    if failure:
        lines += ["  <detail>", f"    {escape(_clean(failure.message))}", "  </detail>"]
    lines.append("</OSGTestResult>")
    return "\n".join(lines) + "\n"


def write(directory: Path, script_id: str, failure: Optional[Failure],
          metrics: Mapping[str, str]) -> Path:
    """Atomically (re)write ``otrb_output.xml`` in ``directory``."""
    path = directory / FILE_NAME
    atomic.write_text(path, render(script_id, failure, metrics))
    return path
