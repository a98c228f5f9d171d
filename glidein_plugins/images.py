"""The images dict (``SINGULARITY_IMAGES_DICT``) and platform lists (``REQUIRED_OS``).

A dict is ``platform:URI,platform:URI``: no comma anywhere, no colon in a platform key; the URI
is everything after the first colon (``docker://repo:tag`` keeps its colon); an item without a
colon has an empty URI. A platform list is comma-separated; ``any`` means every platform.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from glidein_plugins.errors import InputError

if TYPE_CHECKING:
    from glidein_plugins.context import Context

ANY = "any"
ANY_ORDER = ("default", "rhel9", "rhel8", "rhel7", "rhel6")
OSG_DEFAULTS = tuple(
    (f"rhel{n}", f"/cvmfs/singularity.opensciencegrid.org/opensciencegrid/osgvo-el{n}:latest")
    for n in (9, 8, 7)
)
LEGACY_KEYS = (  # legacy variable -> platform it overrides
    ("SINGULARITY_IMAGE_DEFAULT6", "rhel6"),
    ("SINGULARITY_IMAGE_DEFAULT7", "rhel7"),
    ("SINGULARITY_IMAGE_DEFAULT", "default"),
)
REMOTE_SCHEMES = ("docker://", "oras://", "library://", "shub://", "http://", "https://")


def _check_text(text: str, where: str) -> None:
    if any(char in text for char in "\n\r\0"):
        raise InputError(where, "holds a newline or NUL")


def parse_dict(text: str, where: str = "") -> list[tuple[str, str]]:
    """``[(platform, uri), ...]`` in order; a repeated platform keeps its first URI."""
    _check_text(text, where)
    items: list[tuple[str, str]] = []
    seen = set()
    for item in text.split(","):
        if not item.strip():
            continue
        platform, _, uri = item.partition(":")
        if not platform.strip():
            raise InputError(where, f"item {item!r} has no platform key")
        if platform not in seen:
            seen.add(platform)
            items.append((platform, uri))
    return items


def format_dict(items: Iterable[tuple[str, str]]) -> str:
    """The dict text for ``items`` (inverse of ``parse_dict``)."""
    parts = []
    for platform, uri in items:
        if not platform.strip() or any(char in platform for char in ":,\n\r\0"):
            raise ValueError(f"invalid platform key {platform!r}")
        if any(char in uri for char in ",\n\r\0"):
            raise ValueError(f"invalid image URI {uri!r}")
        parts.append(f"{platform}:{uri}")
    return ",".join(parts)


def parse_platforms(text: str | None) -> list[str]:
    """A platform list in order, ``['any']`` when empty."""
    names = [name.strip() for name in (text or "").split(",") if name.strip()]
    return list(dict.fromkeys(names)) or [ANY]


def preference(entry_os: Sequence[str], job_os: Sequence[str]) -> list[str]:
    """Platforms acceptable to both the entry and the job, in the job's order of preference.

    ``any`` on one side leaves the other side's list; ``any`` on both gives ``ANY_ORDER``.
    """
    entry_any, job_any = ANY in entry_os, ANY in job_os
    if entry_any and job_any:
        return list(ANY_ORDER)
    if job_any:
        return [name for name in entry_os if name != ANY]
    if entry_any:
        return [name for name in job_os if name != ANY]
    return [name for name in job_os if name in entry_os]


def is_remote(uri: str) -> bool:
    return uri.startswith(REMOTE_SCHEMES)


def rebase_cvmfs(path: str, cvmfs_root: str) -> str:
    """``/cvmfs/x`` -> ``CVMFS_ROOT/x`` when CVMFS is mounted elsewhere."""
    root = cvmfs_root.rstrip("/") or "/cvmfs"
    if root != "/cvmfs" and (path == "/cvmfs" or path.startswith("/cvmfs/")):
        return root + path[len("/cvmfs"):]
    return path


def under(path: str, root: str) -> bool:
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def node_platforms(context: Context) -> list[str]:
    """The platforms this node serves, most preferred first: the entry's ``GLIDEIN_REQUIRED_OS``
    meeting the Frontend's ``REQUIRED_OS`` (the entry's value is never overwritten)."""
    return preference(parse_platforms(context.get("GLIDEIN_REQUIRED_OS")),
                      parse_platforms(context.get("REQUIRED_OS")))
