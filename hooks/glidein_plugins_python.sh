# glidein_plugins_python.sh: sourced (never run) by the setup and periodic scripts, once they
# have found the package directory: how to bound a command, how to find a Python >= 3.9, and
# how to start the package with it. POSIX sh (dash, busybox sh, bash).
#
# Uses: $scratch (a path prefix for temporary files), $GLIDEIN_PLUGINS_PYTHON,
# $GLIDEIN_PLUGINS_PYTHON_CANDIDATES, $GLIDEIN_PLUGINS_PYTHON_TIMEOUT.
# Sets: check_seconds, limit; find_python sets python, python_version and tried.
# shellcheck disable=SC2034,SC2154  # variables set for, or given by, the sourcing script

check_seconds=${GLIDEIN_PLUGINS_PYTHON_TIMEOUT:-10}
case $check_seconds in
    '' | *[!0-9]* | 0) check_seconds=10 ;;
esac

# How to bound a command: coreutils/busybox `timeout`, with a KILL after a grace period if it
# takes -k; nothing when the node has no `timeout` (then a hung interpreter could hang us).
limit=none
if command -v timeout >/dev/null 2>&1; then
    if timeout -k 1 5 /bin/sh -c : </dev/null >/dev/null 2>&1; then
        limit=term_then_kill
    elif timeout 5 /bin/sh -c : </dev/null >/dev/null 2>&1; then
        limit=term_only
    fi
fi

# bounded SECONDS COMMAND...
bounded() {
    _gpp_seconds=$1
    shift
    case $limit in
        term_then_kill) timeout -k 2 "$_gpp_seconds" "$@" ;;
        term_only) timeout "$_gpp_seconds" "$@" ;;
        *) "$@" ;;
    esac
}

# Python 2 runs this too (and exits 1): it prints the version, exits 0 only from 3.9 on.
version_check='import sys; sys.stdout.write("%d.%d.%d" % sys.version_info[:3]); sys.exit(sys.version_info < (3, 9))'

tried=""
note_tried() {
    tried="${tried:+$tried; }$1"
}

# usable CANDIDATE: true if it is a Python >= 3.9 (sets python and python_version), else notes
# why not. The version is written to a file, so an interpreter that leaves a child behind
# holding its output cannot block us.
usable() {
    case $1 in
        */*)
            if [ ! -f "$1" ] || [ ! -x "$1" ]; then
                note_tried "$1: not an executable file"
                return 1
            fi
            path=$1
            ;;
        *)
            if ! path=$(command -v "$1" 2>/dev/null) || [ -z "$path" ]; then
                note_tried "$1: not found in PATH"
                return 1
            fi
            ;;
    esac
    bounded "$check_seconds" "$path" -s -E -c "$version_check" </dev/null >"$scratch.out" \
        2>/dev/null
    rc=$?
    version=$(tr -cd '0-9.' <"$scratch.out" 2>/dev/null | cut -c 1-20)
    case $rc in
        0)
            if [ -z "$version" ]; then
                note_tried "$path: exit code 0 but no version reported: not a Python"
                return 1
            fi
            python=$path
            python_version=$version
            return 0
            ;;
        1)
            if [ -n "$version" ]; then
                note_tried "$path: Python $version is older than 3.9"
            else
                note_tried "$path: not a usable Python (version check failed, exit code 1)"
            fi
            ;;
        124 | 137 | 143)
            note_tried "$path: version check timed out after $check_seconds s"
            ;;
        *)
            note_tried "$path: version check failed (exit code $rc)"
            ;;
    esac
    return 1
}

# find_python: the first usable of $GLIDEIN_PLUGINS_PYTHON and the candidates ('' if none).
find_python() {
    python=""
    set -f  # the list is split on spaces, never globbed
    for candidate in ${GLIDEIN_PLUGINS_PYTHON:+"$GLIDEIN_PLUGINS_PYTHON"} \
        ${GLIDEIN_PLUGINS_PYTHON_CANDIDATES-python3 python3.14 python3.13 python3.12 python3.11 \
        python3.10 python3.9 python /usr/bin/python3 /usr/libexec/platform-python}; do
        if usable "$candidate"; then
            break
        fi
    done
    set +f
}

# How the package runs: -s -E (no user site-packages, no PYTHON* variables), the package dir
# first on sys.path, the work dir ('' in sys.path) dropped so that a file downloaded there cannot
# shadow a module. Paths travel as arguments (python -c "$launcher" PKG_DIR ARGS...), never as
# code. Exit code 3: the package or a dependency cannot be imported.
launcher=$(cat <<'EOF_LAUNCHER'
import sys
sys.path[:] = [p for p in sys.path if p not in ("", ".")]
sys.path.insert(0, sys.argv[1])
try:
    from glidein_plugins.cli import exit_now, main
except ImportError as exc:
    sys.stderr.write("cannot import glidein_plugins or a dependency (pluggy, PyYAML): %s\n" % exc)
    sys.exit(3)
exit_now(main(sys.argv[2:]))
EOF_LAUNCHER
)
