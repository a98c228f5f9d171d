"""The GlideinWMS result XML (``otrb_output.xml``, OSGTestResult 4.3.1) that every setup script
leaves in the directory it started in. Status is OK exactly when the exit code is 0."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path

from glidein_plugins.errors import Failure
from glidein_plugins.node import atomic

FILE_NAME = "otrb_output.xml"
# Characters XML 1.0 cannot carry, and lone surrogates (undecodable bytes read with
# surrogateescape), which would not be UTF-8 in the file.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: object) -> str:
    """``text`` with every character XML cannot hold replaced by ``?``."""
    return _XML_INVALID.sub("?", str(text))


_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTR = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;",
                       "\n": "&#10;", "\t": "&#9;"})


def _text(text: object) -> str:
    """Element content for ``text`` (CR as a reference: a parser would turn a raw one into LF)."""
    return _clean(text).translate(_TEXT)


def _attr(text: object) -> str:
    """A double-quoted attribute value (whitespace as references, which parsers keep)."""
    return '"' + _clean(text).translate(_ATTR) + '"'


def _timestamp() -> str:
    """Local time as ``YYYY-MM-DDTHH:MM:SS+hh:mm`` (``date +%Y-%m-%dT%H:%M:%S%:z``)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return stamp[:-2] + ":" + stamp[-2:]


def render(script_id: str, failure: Failure | None, metrics: Mapping[str, str]) -> str:
    """The XML text: OK with metrics, or ERROR with the failure type, metrics and detail."""
    stamp = _attr(_timestamp())

    def metric(name: str, value: object) -> str:
        return (f"    <metric name={_attr(name)} ts={stamp} uri=\"local\">"
                f"{_text(value)}</metric>")

    lines = ['<?xml version="1.0"?>',
             f'<OSGTestResult id={_attr(script_id)} version="4.3.1">',
             "  <result>",
             f"    <status>{'ERROR' if failure else 'OK'}</status>"]
    if failure:
        lines.append(metric("failure", failure.type.value))
    lines += [metric(name, value) for name, value in metrics.items()]
    lines.append("  </result>")
    if failure:
        detail = _text(failure.message).split("\n")
        lines += ["  <detail>", *(f"    {line}" for line in detail), "  </detail>"]
    lines.append("</OSGTestResult>")
    return "\n".join(lines) + "\n"


def write(directory: Path, script_id: str, failure: Failure | None,
          metrics: Mapping[str, str]) -> Path:
    """Atomically (re)write ``otrb_output.xml`` in ``directory``."""
    path = directory / FILE_NAME
    atomic.write_text(path, render(script_id, failure, metrics))
    return path
