"""Built-in plugin ``cvmfs``: check the CVMFS repositories jobs need, and advertise them under the
names OSG pilots use, which job requirements across the grid already match on.

* ``HAS_CVMFS_<repo>`` (C): ``True`` when ``ROOT/<repo>`` is a directory, else ``False`` with
  ``HAS_CVMFS_<repo>_REASON`` saying why (missing, not a directory, stale); ``<repo>`` is the
  repository name with each ``.`` and ``-`` as ``_`` (``HAS_CVMFS_oasis_opensciencegrid_org``).
* ``CVMFS_<repo>_REVISION`` (I): the repository's revision, CVMFS's ``user.revision`` extended
  attribute of its root directory (what ``attr -g revision`` shows), only when that is a
  non-negative integer: CVMFS re-exported over NFS, or a plain directory, has none.

The repositories: the ``repositories`` setting, then GlideinWMS's ``GLIDEIN_CVMFS_REPOS``
(colon-separated, as its cvmfsexec support reads it; glidein_config, else the entry's
``attributes``, else the environment), each once. With none, nothing at all is done. A bad name
in the setting is a ``Config`` failure naming file:line; one in ``GLIDEIN_CVMFS_REPOS`` (which
a Frontend may set) is left out with a warning naming its line.

``ROOT`` is ``CVMFS_MOUNT_DIR``, else ``/cvmfs``. Each repository is looked at as ``ROOT/<repo>/.``
(which goes into the directory, so autofs mounts it) by a bounded ``stat`` of its own, all
concurrently: a stale repository (the ``stat`` killed at the timeout) is advertised ``False``
with a warning, and hides none of the others. The revisions of the available ones are read by
one bounded child Python, which answers path by path, so a hang on one keeps the answers before
it. The hook does not take ``facts``: it depends on no earlier phase.

Settings (``settings: {cvmfs: {...}}``): ``repositories`` (list of names, []), ``timeout``
(seconds for the ``stat`` and for the revision reader, each; 20).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from glidein_plugins import hookimpl
from glidein_plugins.config.options import Option, Options
from glidein_plugins.errors import FailureType, GlideinFailure
from glidein_plugins.node import commands, paths
from glidein_plugins.node.cvmfs_names import REPOS_KEY, name_problem
from glidein_plugins.spec import checks
from glidein_plugins.spec.context import Context
from glidein_plugins.spec.results import Attribute, flag

PLUGIN = "cvmfs"
SETTINGS = Options(
    Option("repositories", [], checks.strings, "CVMFS repositories to check and advertise, "
           "besides those of GLIDEIN_CVMFS_REPOS",
           validate=lambda names: next(filter(None, map(name_problem, names)), "")),
    Option("timeout", 20.0, checks.seconds,
           "seconds for the stat of the repositories, and for reading their revisions"),
)
_INT64_MAX = 2**63 - 1
XATTR = "user.revision"

# argv[1]: the xattr's name; argv[2:]: the repository roots. For each, in order, one
# NUL-terminated record: the xattr's value (NULs blanked), or "!why"; flushed, so that a child
# killed on a stale repository has still answered for those before it.
SCRIPT = r"""
import os, sys
get = getattr(os, "getxattr", None)
for path in sys.argv[2:]:
    try:
        if get is None:
            raise OSError(0, "this Python cannot read extended attributes")
        answer = get(path, sys.argv[1]).decode("ascii", "replace").replace("\0", " ")
    except OSError as exc:
        answer = "!" + (exc.strerror or str(exc))
    sys.stdout.write(answer + "\0")
    sys.stdout.flush()
"""


@dataclass(frozen=True)
class Repository:
    """A configured repository and where it was named (``file:line: settings.cvmfs...``)."""

    name: str
    where: str

    @property
    def suffix(self) -> str:
        """The name as it appears in attribute names: ``.`` and ``-`` as ``_``."""
        return attribute_suffix(self.name)


def attribute_suffix(name: str) -> str:
    return name.replace(".", "_").replace("-", "_")


def settings(context: Context) -> dict[str, Any]:
    return checks.plugin_settings(context, PLUGIN, SETTINGS)


def configured(context: Context, names: list[str]) -> list[Repository]:
    """The repositories to check, each once: the setting's (a bad name is a Config failure),
    then ``GLIDEIN_CVMFS_REPOS``'s (a bad name is left out, with a warning)."""
    setting_where = checks.where(context, PLUGIN, "repositories")
    for name in names:
        why = name_problem(name)
        if why:
            raise GlideinFailure(FailureType.CONFIG, f"{setting_where}: {why}")
    from_config = []
    key_where = f"{context.where(REPOS_KEY) or 'environment'}: {REPOS_KEY}"
    for item in context.value(REPOS_KEY).split(":"):
        name = item.strip()
        why = name_problem(name) if name else ""
        if why:
            context.note(f"{key_where}: {why}: not checked", "warning")
        elif name:
            from_config.append(Repository(name, key_where))
    found: dict[str, Repository] = {}  # attribute suffix (ClassAd names ignore case) -> first
    for repo in [*(Repository(name, setting_where) for name in names), *from_config]:
        first = found.setdefault(repo.suffix.lower(), repo)
        if first.name != repo.name:
            context.note(f"{repo.where}: {repo.name} would be advertised under the names of "
                         f"{first.name} ({first.where}): not checked", "warning")
    return list(found.values())


@dataclass(frozen=True)
class Revisions:
    """What the revision reader said: ``answers`` maps each root it answered for to the xattr's
    value or ``!why``; ``hung`` is the root it was reading when it was killed ('' if none)."""

    answers: dict[str, str]
    hung: str = ""
    reason: str = ""


def reader_argv(roots: list[str]) -> list[str]:
    return [sys.executable or "python3", "-I", "-S", "-c", SCRIPT, XATTR, *roots]


def parse_revisions(roots: list[str], result: commands.CommandResult) -> Revisions:
    """The reader's answers, in order; when it was killed, the root it was working on."""
    answers = dict(zip(roots, result.stdout.split("\0")[:-1]))  # the last one is unterminated
    if len(answers) == len(roots):
        return Revisions(answers)
    hung = roots[len(answers)] if result.timed_out else ""
    return Revisions(answers, hung, result.reason or f"unexpected output {result.stdout[:80]!r}")


def _revision(answer: str | None, reason: str) -> tuple[int | None, str, str]:
    """``(revision, what to say, trace level)`` for one reader's answer: the revision only
    when it is a non-negative 64-bit integer. No extended attribute is normal (CVMFS over NFS,
    a plain directory); an unread or malformed one is a warning."""
    if answer is None:
        return None, f"revision not read: {reason}", "warning"
    if answer.startswith("!"):
        return None, f"no revision ({answer[1:]})", "info"
    text = answer.strip()
    if text.isascii() and text.isdigit() and int(text) <= _INT64_MAX:
        return int(text), f"revision {int(text)}", "info"
    return None, f"revision {text[:40]!r} is not a non-negative integer: not advertised", \
        "warning"


@hookimpl
def glidein_attributes_contribute(context: Context) -> list[Attribute]:
    options = settings(context)
    repos = configured(context, list(options["repositories"]))
    if not repos:
        return []  # nothing configured: no process, no attribute
    timeout = float(options["timeout"])
    root = context.cvmfs_root
    where = {repo: f"{root}/{repo.name}/." for repo in repos}
    found = paths.inspect(where.values(), timeout, context.quiet_run, split_under=[root])
    available = [where[repo] for repo in repos if found[where[repo]].kind == "directory"]
    read = parse_revisions(available, context.quiet_run(reader_argv(available), timeout)) \
        if available else Revisions({})
    attributes: list[Attribute] = []
    for repo in repos:
        path = where[repo]
        name = f"HAS_CVMFS_{repo.suffix}"
        why = _unavailable(path, found[path], read)
        attributes += flag(name, not why, why)
        if why:
            context.note(f"{repo.name} ({repo.where}): {name}=False: {why}", "warning")
            continue
        number, detail, level = _revision(read.answers.get(path), read.reason)
        if number is not None:
            attributes.append(Attribute.integer(f"CVMFS_{repo.suffix}_REVISION", number))
        context.note(f"{repo.name}: available at {path[:-2]}, {detail}", level)
    return attributes


def _unavailable(path: str, info: paths.PathInfo, read: Revisions) -> str:
    """Why the repository at ``path`` (``ROOT/REPO/.``) cannot be used ('' when it can)."""
    shown = path[:-2]  # without the trailing '/.'
    if info.kind == "unknown":
        return f"{shown} {info.reason}"
    if info.kind != "directory":  # ROOT/REPO/. is missing: no directory to enter
        return f"{shown} does not exist or is not a directory (not mounted)"
    if path == read.hung:
        return (f"{shown}: reading its revision did not finish: {read.reason} "
                f"({paths.STALE_HINT})")
    return ""
