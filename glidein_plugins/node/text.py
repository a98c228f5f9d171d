"""Free text made fit for one line of a log, an error file or a hold reason.

On the per-job path (the job wrapper): imports nothing.
"""

from __future__ import annotations


def one_line(text: str, limit: int = 1000) -> str:
    """``text`` on one line: control characters and runs of blanks become one space, and the
    result is cut to ``limit`` characters (ending with ``...`` when cut)."""
    line = " ".join("".join(char if char.isprintable() else " " for char in text).split())
    return line if len(line) <= limit else line[:limit - 3] + "..."
