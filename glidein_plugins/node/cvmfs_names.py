"""CVMFS repository names: what is one, and the GlideinWMS variable listing them."""

from __future__ import annotations

import re

REPOS_KEY = "GLIDEIN_CVMFS_REPOS"
# a fully qualified repository name: DNS labels (letters, digits, inner '-') joined by dots
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_NAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})+\Z")


def name_problem(name: str) -> str:
    """Why ``name`` is not a CVMFS repository name ('' if it is one)."""
    if _NAME.match(name):
        return ""
    return (f"{name!r} is not a CVMFS repository name (a fully qualified name such as "
            "oasis.opensciencegrid.org: letters, digits and inner '-' in dot-separated labels)")
