#!/bin/sh
# glidein_plugins_wrapper.sh: the job wrapper of glidein_plugins: it starts every job in its
# Apptainer/Singularity container.
#
# Two ways to use it (HTCondor runs it as `WRAPPER JOB ARGS...` in the job sandbox):
#   - a GlideinWMS wrapper fragment (a file with wrapper="True"): condor_startup.sh
#     concatenates the fragments into condor_job_wrapper.sh (`#!/bin/sh`, the fragments, then
#     `exec "$@"`), the USER_JOB_WRAPPER. The fragments share one shell: every name set here
#     starts with _gp_ and is unset at the end, and nothing here exits on the way to the job;
#   - standalone, as the USER_JOB_WRAPPER itself, under this file name: it then ends with
#     `exec "$@"`.
#
# First pass, outside the container: the Python part (glidein_plugins.wrap) reads the setup's
# state, the job and machine ads, checks that the image and the job's CVMFSReposList
# repositories are readable (bounded in time) and prints shell commands for `eval`: the
# runtime's environment, then `exec RUNTIME exec --home SANDBOX:/srv --pwd /srv ... IMAGE
# /bin/sh .glidein_plugins/WRAPPER JOB ARGS...`: the WHOLE wrapper, copied into the sandbox,
# runs again inside, so the fragments before and after this one behave as they do without a
# container. Or `set -- JOB ARGS...` to go on without one: no container wanted, PREFERRED's
# fallback, HTCondor starting the container itself (the arguments are then `apptainer exec
# ... IMAGE JOB...`: never wrapped twice, only corrected, e.g. no -C when nested). Every word
# is single-quoted, so spaces, quotes, $, ;, globs and newlines reach the job unchanged. When
# the job must not start, the Python part reports it (one line in $_CONDOR_WRAPPER_ERROR_FILE,
# the job attribute JobWrapperFailure via condor_chirp, the anti-black-hole delay) and the
# wrapper exits 1; what the Python part cannot report (no Python 3.9, no package) is reported
# here the same way.
# Second pass, inside (GWMS_SINGULARITY_REEXEC=1 in a container): HOME=/srv, TMP, TMPDIR and
# TEMP unset, then the scripts named in GLIDEIN_PLUGINS_INSIDE are sourced; no Python needed.
#
# Environment:
#   GLIDEIN_PLUGINS_STATE   the setup's state file (else that attribute of the machine ad);
#                           none: setup wanted no container, the job runs as it is, no Python
#   GLIDEIN_PLUGINS_PYTHON  the interpreter (else the first of python3, /usr/bin/python3,
#                           /usr/libexec/platform-python)
#   GLIDEIN_PLUGINS_DIR     the directory holding the glidein_plugins package (else the parent
#                           of this file's directory when standalone, else the package
#                           installed for that Python)
#   GLIDEIN_PLUGINS_INSIDE  scripts (paths inside the container, ':'-separated) sourced inside
#                           before the job: a VO's own steps (a VO plugin puts it in the
#                           invocation's environment, or the glidein exports it to jobs)
#   GLIDEIN_PLUGINS_FAILURE_DELAY  the delay (s) before failing when the setup's own setting
#                           (launch failure_delay) cannot be read (default 600)
# POSIX sh only: it runs under dash, busybox sh and bash alike.

_gp_fail() {  # one line to the error file and stderr, the delay, exit 1
    _gp_line=$(printf '%s' "glidein_plugins wrapper: $1" | tr '\n\r\t' '   ' | cut -c 1-1000)
    printf '%s\n' "$_gp_line" >&2
    if [ -n "${_CONDOR_WRAPPER_ERROR_FILE:-}" ]; then
        printf '%s\n' "$_gp_line" >"$_CONDOR_WRAPPER_ERROR_FILE"
    fi
    if command -v condor_chirp >/dev/null 2>&1; then
        if command -v timeout >/dev/null 2>&1; then
            timeout 30 condor_chirp set_job_attr JobWrapperFailure "\"$(printf '%s' \
                "$_gp_line" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')\"" </dev/null >&2
        fi
    fi
    case ${GLIDEIN_PLUGINS_FAILURE_DELAY:-} in
        '' | *[!0-9]*) sleep 600 ;;
        *) sleep "$GLIDEIN_PLUGINS_FAILURE_DELAY" ;;
    esac
    exit 1
}

if [ "${GWMS_SINGULARITY_REEXEC:-}" = 1 ] &&
    [ -n "${APPTAINER_CONTAINER:-}${SINGULARITY_CONTAINER:-}" ]; then
    # Second pass, inside the container (started with --home SANDBOX:/srv --pwd /srv): the
    # final setup, then the steps VO plugins or the glidein name in GLIDEIN_PLUGINS_INSIDE.
    HOME=/srv
    export HOME
    unset TMP TMPDIR TEMP
    _gp_list=${GLIDEIN_PLUGINS_INSIDE:-}
    while [ -n "$_gp_list" ]; do
        _gp_script=${_gp_list%%:*}
        case $_gp_list in
            *:*) _gp_list=${_gp_list#*:} ;;
            *) _gp_list= ;;
        esac
        [ -n "$_gp_script" ] || continue
        if [ ! -f "$_gp_script" ] || [ ! -r "$_gp_script" ]; then
            _gp_fail "inside the container: $_gp_script (in GLIDEIN_PLUGINS_INSIDE) cannot be read"
        fi
        # shellcheck disable=SC1090 # a VO's or the glidein's own step, sourced on purpose
        . "$_gp_script" || _gp_fail "inside the container: $_gp_script (in GLIDEIN_PLUGINS_INSIDE) failed"
    done
else
    _gp_state=${GLIDEIN_PLUGINS_STATE:-}
    if [ -z "$_gp_state" ] && [ -f "${_CONDOR_MACHINE_AD:-}" ]; then
        # GLIDEIN_PLUGINS_STATE = "PATH" (names are case-insensitive): the first, one process
        _gp_state=$(sed -n -e 's/^[[:space:]]*[Gg][Ll][Ii][Dd][Ee][Ii][Nn]_[Pp][Ll][Uu][Gg][Ii][Nn][Ss]_[Ss][Tt][Aa][Tt][Ee][[:space:]]*=[[:space:]]*"\(.*\)"[[:space:]]*$/\1/' \
            -e 't found' -e d -e ':found' -e p -e q "$_CONDOR_MACHINE_AD" 2>/dev/null)
    fi
    if [ -n "$_gp_state" ]; then
        for _gp_python in ${GLIDEIN_PLUGINS_PYTHON:+"$GLIDEIN_PLUGINS_PYTHON"} python3 \
            /usr/bin/python3 /usr/libexec/platform-python; do
            command -v "$_gp_python" >/dev/null 2>&1 && break
            _gp_python=
        done
        [ -n "$_gp_python" ] || _gp_fail "no Python 3 found (tried ${GLIDEIN_PLUGINS_PYTHON:+$GLIDEIN_PLUGINS_PYTHON, }python3, /usr/bin/python3, /usr/libexec/platform-python; PATH=$PATH)"
        _gp_dir=${GLIDEIN_PLUGINS_DIR:-}
        if [ -z "$_gp_dir" ]; then
            case $0 in
                */*) _gp_dir=${0%/*}/.. ;;
            esac
            [ -f "$_gp_dir/glidein_plugins/wrap.py" ] || _gp_dir=
        fi
        # -I -S: no site-packages, no PYTHON* variables, nothing from the sandbox on sys.path
        # (the package dir only; site-packages only to find an installed package)
        _gp_out=$("$_gp_python" -I -S -c '
import sys
if sys.version_info < (3, 9):
    print("%s is Python %d.%d, not 3.9 or newer" % ((sys.executable,) + sys.version_info[:2]))
    sys.exit(3)
if sys.argv[3]:
    sys.path.insert(0, sys.argv[3])
else:
    import site
    site.main()
try:
    from glidein_plugins.wrap import hook
except ImportError as exc:
    print("cannot import glidein_plugins.wrap (%s) with %s: %s" % (
        sys.argv[3] or "installed", sys.executable, exc))
    sys.exit(3)
code = hook(sys.argv[1:])
sys.stdout.flush()
sys.stderr.flush()
import os
os._exit(code)  # no interpreter teardown: it costs as much as the work itself
' "$_gp_state" "$0" "$_gp_dir" "$@")
        _gp_rc=$?
        case $_gp_rc in
            0) eval "$_gp_out" ;;
            86) exit 1 ;;  # reported by the Python part (error file, chirp, delay)
            3) _gp_fail "$_gp_out" ;;
            *) _gp_fail "the Python part ($_gp_python) exited with code $_gp_rc (see the job's stderr)" ;;
        esac
    fi
fi
unset _gp_state _gp_python _gp_dir _gp_out _gp_rc _gp_line _gp_list _gp_script
unset -f _gp_fail

# Standalone (this file is the USER_JOB_WRAPPER, or its copy inside the container): run the
# job. Concatenated, the fragments after this one and the final `exec "$@"` do.
case ${0##*/} in
    glidein_plugins_wrapper.sh) exec "$@" ;;
esac
