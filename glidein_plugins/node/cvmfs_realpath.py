"""Real paths of local images, CVMFS-aware, from one bounded child process.

A ``:latest`` tag in CVMFS is a symlink to an absolute ``/cvmfs/...`` path: when CVMFS is
mounted elsewhere (``CVMFS_MOUNT_DIR``) ``realpath`` fails on it, so links are followed one
component at a time, ``/cvmfs`` targets rebased on the CVMFS root (as GlideinWMS's
``cvmfs_resolve_path``). It runs in a child process killed at the timeout, because a stale
mount hangs in the kernel: a POSIX shell (``test -L`` and ``test -e`` are built in; one
``readlink`` per link followed), which starts in a millisecond where a Python takes ten. Light on
purpose: the job wrapper imports it for every job.
"""

from __future__ import annotations

# $1: the CVMFS root; then the paths. For each path, in order, one NUL-terminated record:
# "/real/path", or "!why" (missing, a symlink loop); one write each, so that a child killed on
# a stale path has still answered for the paths before it. A link's target is read with a
# trailing "." so that command substitution keeps any newline it ends with.
SCRIPT = r"""
root=$1
shift
for path in "$@"; do
    real=/ rest=$path hops=40 answer=
    while [ -n "$rest" ]; do
        case $rest in
            */*) name=${rest%%/*} rest=${rest#*/} ;;
            *) name=$rest rest= ;;
        esac
        case $name in
            '' | .) continue ;;
            ..) real=${real%/*} real=${real:-/}; continue ;;
        esac
        here=${real%/}/$name
        if [ ! -L "$here" ]; then
            real=$here
            continue
        fi
        hops=$((hops - 1))
        if [ "$hops" -lt 0 ]; then answer='!symlink loop'; break; fi
        if ! target=$(readlink -- "$here" && echo .); then answer='!cannot read link'; break; fi
        target=${target%??}
        case $target in
            /cvmfs | /cvmfs/*) [ "$root" = /cvmfs ] || target=$root${target#/cvmfs} ;;
        esac
        case $target in /*) real=/ ;; esac
        rest=$target${rest:+/$rest}
    done
    if [ -z "$answer" ]; then
        if [ -e "$real" ]; then answer=$real; else answer='!does not exist'; fi
    fi
    printf '%s\000' "$answer"
done
"""


def argv(paths: list[str], cvmfs_root: str) -> list[str]:
    """The child's command line."""
    return ["/bin/sh", "-c", SCRIPT, "glidein-plugins-realpath", cvmfs_root, *paths]


def answers(paths: list[str], stdout: str) -> dict[str, tuple[str, str]]:
    """``path -> (real path, '')`` or ``(''``, why not)`` for every path the child answered."""
    records = stdout.split("\0")[:-1]  # the last one is unterminated, or empty
    return {path: ("", record[1:]) if record.startswith("!") else (record, "")
            for path, record in zip(paths, records)}
