#!/bin/sh
# glidein_plugins_wrapper.sh: the job wrapper of glidein_plugins: it starts every job in its
# Apptainer/Singularity container.
#
# Two ways to use it (HTCondor runs it as `WRAPPER JOB ARGS...` in the job sandbox):
#   - a GlideinWMS wrapper fragment (a file with wrapper="True"): condor_startup.sh
#     concatenates the fragments into condor_job_wrapper.sh (`#!/bin/sh`, the fragments, then
#     `exec "$@"`) in the glidein's work dir, the USER_JOB_WRAPPER. The fragments share one
#     shell: every name set here starts with _gp_ and is unset at the end, and nothing here
#     exits on the way to the job;
#   - standalone, as the USER_JOB_WRAPPER itself, under this file name: it then ends with
#     `exec "$@"`.
#
# The job's environment is the job's: HTCondor merges the job's `environment` over what the
# glidein exports. So nothing is taken from it, and nothing of it runs on the host:
#   - the first pass uses only keywords, POSIX special built-ins (eval, exec, export, set,
#     unset, ., exit...: bash, /bin/sh on EL, imports exported functions, BASH_FUNC_name%%,
#     even as sh, but looks the special built-ins up before them) and commands by absolute
#     path; every _gp_ name starts empty; the commands run with a fixed PATH (the job's is
#     restored for the job);
#   - the decision (setup's, in every mode: container, native or bare), the state, the Python
#     and the package are setup's `decision` file, sourced: beside this file when it is
#     condor_job_wrapper.sh in the glidein's work dir (WORK_DIR/.glidein_plugins/decision),
#     else beside the machine ad's GLIDEIN_PLUGINS_STATE (the starter sets $_CONDOR_MACHINE_AD
#     after the job's environment); a machine ad naming no state but GWMS_SINGULARITY_STATUS
#     = "NEVER" (what setup publishes when it decided on no container) is a bare decision.
#     No decision (a failed setup, a publishing problem) fails the job: never a job on the
#     host for want of one. `bare` (NEVER, DISABLE): the job runs
#     as it is, no Python needed.
# GLIDEIN_PLUGINS_STATE, GLIDEIN_PLUGINS_PYTHON and GLIDEIN_PLUGINS_DIR in the environment are
# ignored.
#
# First pass, outside the container: the Python part (glidein_plugins.runs.job) reads the setup's
# state, the job and machine ads, checks that the image and the job's CVMFSReposList
# repositories are readable (bounded in time) and prints shell commands for `eval`: the
# runtime's environment, then `exec RUNTIME exec --home SANDBOX:/srv --pwd /srv ... IMAGE
# /bin/sh .glidein_plugins/WRAPPER JOB ARGS...`: the WHOLE wrapper, copied into the sandbox,
# runs again inside, so the fragments before and after this one behave as they do without a
# container (the job's exported functions reach the job by `/usr/bin/env NAME=... JOB`, never
# the runtime, which runs on the host). Or `set -- JOB ARGS...` to go on without one: a bare
# decision, PREFERRED's fallback, HTCondor starting the container itself (native mode only,
# as setup decided and the machine ad says: the arguments are then `RUNTIME exec ... IMAGE
# JOB...`, never wrapped twice, only corrected, e.g. no -C when nested; in wrapper mode the
# job's argv is always the payload, whatever it looks like). Every word is single-quoted, so
# spaces, quotes, $, ;, globs and newlines reach the job unchanged. When the job must not
# start, the Python part reports it (one line in $_CONDOR_WRAPPER_ERROR_FILE, the job
# attribute JobWrapperFailure via condor_chirp, the anti-black-hole delay) and the wrapper
# exits 1; what the Python part cannot report (no Python 3.9, no package, no decision) is
# reported here the same way.
# Second pass, inside: this file's copy run as `/bin/sh .glidein_plugins/NAME` (a relative
# $0, which HTCondor never gives: it runs the USER_JOB_WRAPPER by its absolute path): that $0
# alone says it, whatever the runtime does with the environment, and a job cannot give it on
# the host. The first pass leaves .glidein_plugins/reexec in the sandbox when it starts the
# container and the second pass removes it: a first pass that finds it (the copy run again as
# a first pass by a runtime that changed its command) fails the job, so the runtime is never
# started twice for one job. Inside: GWMS_SINGULARITY_REEXEC=1, HOME=/srv, TMP, TMPDIR and
# TEMP unset, then the scripts named in GLIDEIN_PLUGINS_INSIDE are sourced; no Python needed.
#
# Environment:
#   GLIDEIN_PLUGINS_INSIDE  scripts (paths inside the container, ':'-separated) sourced inside
#                           before the job: a VO's own steps (a VO plugin puts it in the
#                           invocation's environment, or the glidein exports it to jobs)
#   GLIDEIN_PLUGINS_FAILURE_DELAY  the delay (s) before failing when the setup's own setting
#                           (launch failure_delay) cannot be read (default 600)
# POSIX sh only: it runs under dash, busybox sh and bash alike.

_gp_fail() {  # one line to the error file and stderr, the delay, exit 1 (commands by path)
    PATH=/usr/bin:/bin
    _gp_line=$(/usr/bin/printf '%s' "glidein_plugins wrapper: $1" | /usr/bin/tr '\n\r\t' '   ' |
        /usr/bin/cut -c 1-1000)
    /usr/bin/printf '%s\n' "$_gp_line" >&2
    case ${_CONDOR_WRAPPER_ERROR_FILE:-} in
        ?*) # in the sandbox, the job's: a link it left there is replaced, never followed
            ! /usr/bin/test -L "$_CONDOR_WRAPPER_ERROR_FILE" ||
                /bin/rm -f "$_CONDOR_WRAPPER_ERROR_FILE"
            /usr/bin/printf '%s\n' "$_gp_line" >"$_CONDOR_WRAPPER_ERROR_FILE" ;;
    esac
    # condor_chirp: the glidein's HTCondor (CONDOR_DIR in glidein_config), else the system's
    _gp_chirp=
    case $_gp_state in
        /*/*/*) _gp_chirp=$(/bin/sed -n -e \
            's/^CONDOR_DIR \(\/.*\)$/\1\/libexec\/condor_chirp/p' \
            "${_gp_state%/*/*}/glidein_config" 2>/dev/null | /usr/bin/tail -n 1) ;;
    esac
    for _gp_try in "$_gp_chirp" /usr/libexec/condor/condor_chirp /usr/bin/condor_chirp; do
        ! /usr/bin/test -x "$_gp_try" || break
        _gp_try=
    done
    case $_gp_try in
        /*) /usr/bin/timeout 30 "$_gp_try" set_job_attr JobWrapperFailure "\"$(/usr/bin/printf \
            '%s' "$_gp_line" | /bin/sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')\"" </dev/null >&2 ;;
    esac
    case ${GLIDEIN_PLUGINS_FAILURE_DELAY:-} in
        '' | *[!0-9]*) /bin/sleep 600 ;;
        *) /bin/sleep "$GLIDEIN_PLUGINS_FAILURE_DELAY" ;;
    esac
    exit 1
}

_gp_job_path() {  # the job's PATH again, for the job (and the fragments after this one)
    case $_gp_path in
        =*) PATH=${_gp_path#=} ;;
        *) unset PATH ;;
    esac
}

# the job's PATH ('=' and its value, or '' when it has none): for the job, never for this file
_gp_path=${PATH+"=$PATH"}
PATH=/usr/bin:/bin
export PATH
# every name of ours starts empty: the job's environment may hold any of them
_gp_state='' _gp_python='' _gp_dir='' _gp_decision='' _gp_conf='' _gp_out='' _gp_rc=''
_gp_try=''

case $0 in
    .glidein_plugins/* | /srv/.glidein_plugins/*)
        # Second pass, inside the container: the copy the first pass wrote into the sandbox,
        # started by the runtime as `/bin/sh .glidein_plugins/NAME` (--pwd /srv): a $0 the
        # starter never gives (it runs the USER_JOB_WRAPPER by its absolute path), whatever
        # the runtime does with the environment. The final setup, then the steps VO plugins
        # or the glidein name in GLIDEIN_PLUGINS_INSIDE.
        /bin/rm -f .glidein_plugins/reexec  # the first pass's mark: this copy ran inside
        _gp_job_path
        GWMS_SINGULARITY_REEXEC=1
        HOME=/srv
        export GWMS_SINGULARITY_REEXEC HOME
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
        ;;
    *)
        # First pass, on the host, as the pilot, with the job's environment: only keywords,
        # special built-ins (which no exported function can replace, bash included) and
        # commands by their absolute path until the container starts.
        case $0 in
            /*) _gp_conf=${0%/*}/.glidein_plugins/decision ;;  # beside condor_job_wrapper.sh
        esac
        # shellcheck source=/dev/null
        if ! ( . "$_gp_conf" ) 2>/dev/null; then  # standalone: the machine ad names the state
            _gp_conf=
            _gp_state=$(/bin/sed -n -e 's/^[[:space:]]*[Gg][Ll][Ii][Dd][Ee][Ii][Nn]_[Pp][Ll][Uu][Gg][Ii][Nn][Ss]_[Ss][Tt][Aa][Tt][Ee][[:space:]]*=[[:space:]]*"\(.*\)"[[:space:]]*$/\1/' \
                -e 't found' -e d -e ':found' -e p -e q "${_CONDOR_MACHINE_AD:-/dev/null}" 2>/dev/null)
            case $_gp_state in
                '') # none published: setup decided on no container if it published NEVER
                    case $(/bin/sed -n -e 's/^[[:space:]]*GWMS_SINGULARITY_STATUS[[:space:]]*=[[:space:]]*"\(.*\)"[[:space:]]*$/\1/p' \
                        "${_CONDOR_MACHINE_AD:-/dev/null}" 2>/dev/null) in
                        NEVER) _gp_decision=bare ;;
                    esac ;;
                /*) _gp_conf=${_gp_state%/*}/decision ;;
                *) _gp_fail "the machine ad's GLIDEIN_PLUGINS_STATE ($_gp_state) is not an absolute path" ;;
            esac
            # shellcheck source=/dev/null
            case $_gp_decision in
                bare) ;;
                *) ( . "$_gp_conf" ) 2>/dev/null ||
                    _gp_fail "no setup decision (${_gp_conf:-no state beside the wrapper, none in the machine ad}): did setup run and succeed on this glidein? The job must not run without it" ;;
            esac
        fi
        # shellcheck disable=SC1090 # setup's decision: _gp_decision, _gp_state, _gp_python, _gp_dir
        case $_gp_conf in ?*) . "$_gp_conf" ;; esac
        case $_gp_decision in
            bare) _gp_job_path ;;  # NEVER, DISABLE: the job runs as it is, no Python needed
            container | native)
                # -I -S: no site-packages, no PYTHON* variables, nothing from the sandbox on
                # sys.path (the package dir only; site-packages only to find an installed
                # package); the job's PATH goes in GLIDEIN_PLUGINS_JOB_PATH, for the job's
                # environment only. The Python setup ran with, else the system's.
                for _gp_try in "$_gp_python" /usr/bin/python3 /usr/libexec/platform-python; do
                    case $_gp_try in /*) ;; *) continue ;; esac
                    _gp_out=$(GLIDEIN_PLUGINS_JOB_PATH=$_gp_path "$_gp_try" -I -S -c '
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
    from glidein_plugins.runs.job import hook
except ImportError as exc:
    print("cannot import glidein_plugins.runs.job (%s) with %s: %s" % (
        sys.argv[3] or "installed", sys.executable, exc))
    sys.exit(3)
code = hook(sys.argv[1:])
sys.stdout.flush()
sys.stderr.flush()
import os
os._exit(code)  # no interpreter teardown: it costs as much as the work itself
' "$_gp_state" "$0" "$_gp_dir" "$@")
                    _gp_rc=$?
                    case $_gp_rc in 126 | 127) _gp_try= ; continue ;; esac
                    break
                done
                case $_gp_try in
                    '') _gp_fail "no Python 3 found (tried the one setup used${_gp_python:+, $_gp_python}, /usr/bin/python3, /usr/libexec/platform-python)" ;;
                esac
                _gp_job_path  # before the plan: its variables are relative to the job's environment
                case $_gp_rc in
                    0) eval "$_gp_out" ;;
                    86) exit 1 ;;  # reported by the Python part (error file, chirp, delay)
                    3) _gp_fail "$_gp_out" ;;
                    *) _gp_fail "the Python part ($_gp_try) exited with code $_gp_rc (see the job's stderr)" ;;
                esac
                ;;
            *) _gp_fail "the setup decision in $_gp_conf is '$_gp_decision', not container, native or bare" ;;
        esac
        ;;
esac
unset _gp_state _gp_python _gp_dir _gp_out _gp_rc _gp_line _gp_list _gp_script _gp_path \
    _gp_chirp _gp_decision _gp_conf _gp_try
unset -f _gp_fail _gp_job_path

# Standalone (this file is the USER_JOB_WRAPPER, or its copy inside the container): run the
# job. Concatenated, the fragments after this one and the final `exec "$@"` do.
case ${0##*/} in
    glidein_plugins_wrapper.sh) exec "$@" ;;
esac
