"""The images dict (``SINGULARITY_IMAGES_DICT``) and platform lists (``REQUIRED_OS``).

A dict is ``platform:URI,platform:URI``, GlideinWMS's syntax: no comma anywhere, no colon in a
platform key; the URI is everything after the first colon (``docker://repo:tag`` and
``/cvmfs/x/osgvo-el9:latest`` keep theirs); an item without a colon, or with nothing after it,
has an empty URI. Spaces inside keys and URIs are kept; spaces around them are not (GlideinWMS
would keep `` rhel8`` as a key of its own that no platform list can name). A repeated key takes
the URI of its **last** ``key:`` item, as GlideinWMS's ``dict_get_val`` does (its greedy
``expr`` pattern ``.*,KEY:VALUE,.*`` finds the last ``,key:``; an item without a colon
does not match it, and an empty URI means no image); the key keeps its first place.

A platform list is comma-separated, most preferred first; ``any`` accepts every platform.

The image-restriction rule, for every image the glidein offers or a job asks for:
``SINGULARITY_IMAGE_RESTRICTIONS`` (comma-separated, default ``cvmfs``) is read by
``restrictions``, and ``refusal`` says why an image breaks it: a registry URI only with
``remote``; otherwise an absolute path without ``..``, in CVMFS with ``cvmfs``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (job start imports this)
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from glidein_plugins.spec.context import Context

ANY = "any"
ANY_ORDER = ("default", "rhel9", "rhel8", "rhel7", "rhel6")  # 'any' meets 'any'
OSG_DEFAULTS = tuple(
    (f"rhel{n}", f"/cvmfs/singularity.opensciencegrid.org/opensciencegrid/osgvo-el{n}:latest")
    for n in (9, 8, 7)
)
LEGACY_KEYS = (  # legacy variable -> the platform it overrides
    ("SINGULARITY_IMAGE_DEFAULT6", "rhel6"),
    ("SINGULARITY_IMAGE_DEFAULT7", "rhel7"),
    ("SINGULARITY_IMAGE_DEFAULT", "default"),
)
_BREAKS_LINE = "\n\r\0"
# the URI schemes Apptainer pulls an image from over the network (``apptainer pull``); its
# other transports read the node's files or daemons (docker-archive://, oci-archive://, oci://,
# docker-daemon://, instance://) and are no registry image: such a URI is neither remote nor
# an absolute path, so every image check refuses it
REMOTE_SCHEMES = ("docker", "oras", "library", "shub", "http", "https")
RESTRICTIONS_KEY = "SINGULARITY_IMAGE_RESTRICTIONS"
RESTRICTIONS = ("cvmfs", "remote", "test", "any")


def parse_dict(text: str, where: str = "") -> list[tuple[str, str]]:
    """``[(platform, uri), ...]``: one item per platform key, in order of first appearance.

    Raises InputError (naming ``where``) for a newline or NUL, or an item without a key.
    """
    from glidein_plugins.errors import InputError  # noqa: PLC0415 - job start needs no enum

    if any(char in text for char in _BREAKS_LINE):
        raise InputError(where, "the images dict holds a newline or NUL")
    found: dict[str, str] = {}
    for raw in text.split(","):
        if not raw.strip():
            continue  # ',,' or a trailing comma
        platform, colon, uri = (part.strip() for part in raw.partition(":"))
        if not platform:
            raise InputError(where, f"images dict item {raw.strip()!r} has no platform key "
                                    "(expected platform:URI)")
        if colon:
            found[platform] = uri  # the last URI wins, the first place is kept
        else:
            found.setdefault(platform, "")  # dict_get_val only sees 'key:' items
    return list(found.items())


def format_dict(items: Iterable[tuple[str, str]]) -> str:
    """The dict text for ``items``, ``platform`` alone for an empty URI (``parse_dict``'s inverse).

    Raises ValueError for an item ``parse_dict`` could not give back unchanged.
    """
    parts = []
    for platform, uri in items:
        if (not platform or platform != platform.strip()
                or any(char in platform for char in ":," + _BREAKS_LINE)):
            raise ValueError(f"invalid platform key {platform!r}")
        if uri != uri.strip() or any(char in uri for char in "," + _BREAKS_LINE):
            raise ValueError(f"invalid image URI {uri!r}")
        parts.append(f"{platform}:{uri}" if uri else platform)
    return ",".join(parts)


def parse_platforms(text: str | None) -> list[str]:
    """A platform list in order, without repeats; ``['any']`` when empty.

    ``any`` is recognised in any case (``ANY``); other names are kept as written.
    """
    names = [name.strip() for name in (text or "").split(",") if name.strip()]
    return list(dict.fromkeys(ANY if name.lower() == ANY else name for name in names)) or [ANY]


def preference(entry_os: Sequence[str], job_os: Sequence[str]) -> list[str]:
    """The platforms acceptable to both the entry and the job, in the **job's** order.

    GlideinWMS sorts this intersection alphabetically, so ``REQUIRED_OS=rhel9,rhel8`` meeting an
    entry with ``rhel8,rhel9`` picks rhel8; here the job's first choice stays first. A list
    holding ``any`` accepts every platform: the job's own names come first, then (if the job
    takes any) the entry's, then (if both take any) ``default,rhel9,rhel8,rhel7,rhel6``.
    """
    entry_any, job_any = ANY in entry_os, ANY in job_os
    chosen = [name for name in job_os if name != ANY and (entry_any or name in entry_os)]
    if job_any:
        chosen += [name for name in entry_os if name != ANY]
    if job_any and entry_any:
        chosen += ANY_ORDER
    return list(dict.fromkeys(chosen))


def is_remote(uri: str) -> bool:
    """True for a registry or web URI: a scheme of ``REMOTE_SCHEMES`` (``docker://``,
    ``oras://``, ``library://``, ``shub://``, ``http(s)://``), written as Apptainer reads it
    (lower case)."""
    scheme, separator, _ = uri.partition("://")
    return bool(separator) and scheme in REMOTE_SCHEMES


def rebase_cvmfs(path: str, cvmfs_root: str) -> str:
    """``/cvmfs/x`` -> ``CVMFS_ROOT/x`` when CVMFS is mounted elsewhere (``CVMFS_MOUNT_DIR``)."""
    root = cvmfs_root.rstrip("/") or "/cvmfs"
    if root != "/cvmfs" and under(path, "/cvmfs"):
        return root + path[len("/cvmfs"):]
    return path


def under(path: str, root: str) -> bool:
    """True if ``path`` is ``root`` or lies below it (textually: no symlink is followed)."""
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def node_platforms(context: Context) -> list[str]:
    """The platforms this node serves, most preferred first: the entry's ``GLIDEIN_REQUIRED_OS``
    meeting the Frontend's ``REQUIRED_OS`` (read only: the entry's value is never overwritten)."""
    return preference(parse_platforms(context.get("GLIDEIN_REQUIRED_OS")),
                      parse_platforms(context.get("REQUIRED_OS")))


def restrictions(context: Context) -> frozenset[str]:
    """The restrictions named by ``SINGULARITY_IMAGE_RESTRICTIONS`` (default ``cvmfs``); an
    unknown one is a Config failure naming where it was set."""
    from glidein_plugins.errors import FailureType, GlideinFailure  # noqa: PLC0415 - see above

    raw = context.value(RESTRICTIONS_KEY) or "cvmfs"
    names = frozenset(name.strip().lower() for name in raw.split(",") if name.strip())
    unknown = sorted(names - set(RESTRICTIONS))
    if unknown:
        raise GlideinFailure(FailureType.CONFIG, (
            f"{context.where(RESTRICTIONS_KEY) or 'environment'}: {RESTRICTIONS_KEY}={raw!r}: "
            f"unknown restriction {', '.join(unknown)} (known: {', '.join(RESTRICTIONS)})"))
    return names or frozenset({"cvmfs"})


def refusal(uri: str, allowed: frozenset[str], root: str) -> str:
    """Why an image URI (``/cvmfs`` already rebased on ``root``) breaks the restrictions
    ``allowed`` ('' if it does not)."""
    if is_remote(uri):
        return "" if "remote" in allowed else (
            f"remote image: {RESTRICTIONS_KEY} does not include 'remote'")
    if not uri.startswith("/"):
        return "neither an absolute path nor a registry URI (docker://, oras://, ...)"
    if ".." in uri.split("/"):
        return "a path with '..' components"
    if "cvmfs" in allowed and not under(uri, root):
        return f"not in CVMFS ({root}) and {RESTRICTIONS_KEY} includes 'cvmfs'"
    return ""
