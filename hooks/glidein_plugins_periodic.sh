#!/bin/sh
# shellcheck disable=SC2154  # python, python_version, tried, launcher: from glidein_plugins_python.sh
# glidein_plugins_periodic.sh: the GlideinWMS periodic script of glidein_plugins.
#
# Listed in the entry's files with a period, beside the setup script, e.g.
#
#   <file absfname=".../glidein_plugins_periodic.sh" executable="True" period="600"
#         prefix="NOPREFIX" .../>
#
# glidein_startup.sh runs it once as a setup script (`SCRIPT glidein_config ID`, in the work
# dir), then HTCondor's startd runs it every period as a startd cron job (through GlideinWMS's
# script_wrapper.sh, in a temporary dir, with an absolute glidein_config path). It lives in the
# untarred package directory, as hooks/glidein_plugins_setup.sh does:
#
#   DIR/hooks/glidein_plugins_periodic.sh   this script
#   DIR/glidein_plugins/                    the package
#   DIR/factory_configs/*.yaml              the factory's per-entry configuration
#
# It runs `glidein_plugins periodic`, which re-checks the runtime, CVMFS and the disk within a
# time budget and prints startd-cron lines `NAME = value` (see glidein_plugins/runs/periodic.py).
# It never fails (a failing periodic script only sets GLIDEIN_PS_OK = False, and a failing
# first run would stop the glidein): without a usable Python, or when Python prints nothing,
# hangs or crashes, it prints `GLIDEIN_PLUGINS_PERIODIC_OK = False` with the reason itself
# (and `HAS_SINGULARITY = False` when setup had published True: the job wrapper needs that
# Python too), writes an OK result XML, and exits 0.
#
# Environment: GLIDEIN_PLUGINS_PYTHON, GLIDEIN_PLUGINS_PYTHON_CANDIDATES and
# GLIDEIN_PLUGINS_PYTHON_TIMEOUT as for the setup script. glidein_config:
# GLIDEIN_PLUGINS_PERIODIC_BUDGET (seconds, 60): Python gets that long, plus a grace period.
# POSIX sh only: it runs under dash, busybox sh and bash alike.

glidein_config=$1
script_id=${2:-entry}
xml_file=otrb_output.xml
me=glidein_plugins_periodic.sh

say() {
    printf '%s: %s\n' "$me" "$*" >&2
}

# Free text as the inside of a ClassAd string literal: one line, no quote, no backslash.
literal_text() {
    # shellcheck disable=SC1003 # a backslash, not an escaped quote: tr reads '\\' as one
    printf '%s' "$1" | tr '\n\r\t"\\' '   `/' | tr -d '\000-\010\013\014\016-\037' | cut -c 1-500
}

# The last value of KEY in glidein_config ('' when absent or unreadable).
config_value() {
    grep "^$1 " "$glidein_config" 2>/dev/null | tail -n 1 | cut -d ' ' -f 2-
}

timestamp() {
    date +%Y-%m-%dT%H:%M:%S%z | sed 's/\([+-][0-9][0-9]\)\([0-9][0-9]\)$/\1:\2/'
}

# An OK OSGTestResult (status OK iff exit 0, and this script always exits 0), atomically.
write_ok_xml() {
    ts=$(timestamp)
    tmp=".$xml_file.$$"
    {
        printf '<?xml version="1.0"?>\n'
        printf '<OSGTestResult id="%s" version="4.3.1">\n' "$(literal_text "$script_id" |
            sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g')"
        printf '  <result>\n'
        printf '    <status>OK</status>\n'
        printf '    <metric name="periodic_ok" ts="%s" uri="local">%s</metric>\n' "$ts" "$1"
        printf '  </result>\n'
        printf '</OSGTestResult>\n'
    } >"$tmp" 2>/dev/null && mv -f "$tmp" "$xml_file" 2>/dev/null
    rm -f "$tmp" 2>/dev/null
}

# fallback WHY: the lines Python could not print, then exit 0.
fallback() {
    why=$(literal_text "$1")
    say "$1"
    printf 'GLIDEIN_PLUGINS_PERIODIC_OK = False\n'
    printf 'GLIDEIN_PLUGINS_PERIODIC_REASON = "%s"\n' "$why"
    if [ "$(config_value HAS_SINGULARITY)" = True ]; then
        printf 'HAS_SINGULARITY = False\n'
        printf 'HAS_SINGULARITY_REASON = "periodic re-check: %s"\n' "$why"
    fi
    printf 'GLIDEIN_PLUGINS_PERIODIC_TIME = %s\n' "$(date +%s)"
    write_ok_xml False
    exit 0
}

rm -f "$xml_file"  # a stale result from an earlier script must not be reported as ours

if [ -z "$glidein_config" ]; then
    fallback "usage: $me glidein_config [ID] (no glidein_config given)"
fi

case $0 in
    */*) hook_dir=${0%/*} ;;
    *) hook_dir=. ;;
esac
# shipped inside the untarred package (DIR/hooks/) or as a file of its own beside it
pkg_dir=
for dir in "$hook_dir/glidein_plugins" "$hook_dir/.."; do
    if [ -d "$dir/glidein_plugins" ]; then
        pkg_dir=$(cd "$dir" 2>/dev/null && pwd -P) && break
        pkg_dir=
    fi
done
if [ -z "$pkg_dir" ]; then
    fallback "cannot find the glidein_plugins package beside $0 (expected $hook_dir/glidein_plugins/glidein_plugins or $hook_dir/../glidein_plugins)"
fi

scratch=$(mktemp "${TMPDIR:-/tmp}/glidein_plugins_periodic.XXXXXX" 2>/dev/null) ||
    scratch=".glidein_plugins_periodic.$$"
trap 'rm -f "$scratch" "$scratch.out" "$scratch.err"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

budget=$(config_value GLIDEIN_PLUGINS_PERIODIC_BUDGET | cut -d . -f 1)
case $budget in
    '' | *[!0-9]* | 0) budget=60 ;;
esac
run_seconds=$((budget + 15))  # Python keeps to the budget; this only catches a hung Python

library="$pkg_dir/hooks/glidein_plugins_python.sh"
if [ ! -r "$library" ]; then
    fallback "cannot read $library (an incomplete glidein_plugins tarball?)"
fi
# shellcheck source=/dev/null  # the library, checked on its own
. "$library"

# The first Python >= 3.9 of the candidates, as the setup script chooses it.
find_python
if [ -z "$python" ]; then
    fallback "no Python 3.9 or newer found (the setup found one: was it removed?)"
fi

bounded "$run_seconds" "$python" -s -E -c "$launcher" "$pkg_dir" periodic \
    --config-dir "$pkg_dir/factory_configs" "$glidein_config" "$script_id" \
    </dev/null >"$scratch.out" 2>"$scratch.err"
rc=$?
cat "$scratch.err" >&2
if [ "$rc" -ne 0 ] || ! grep -q '^GLIDEIN_PLUGINS_PERIODIC_OK = ' "$scratch.out" 2>/dev/null; then
    last=$(tail -n 1 "$scratch.err" 2>/dev/null)
    case $rc in
        124 | 137 | 143) fallback "$python did not finish within $run_seconds s" ;;
        3) fallback "$python: $last" ;;
        *) fallback "glidein_plugins periodic (run by $python) exited with code $rc${last:+: $last}" ;;
    esac
fi
cat "$scratch.out"
[ -f "$xml_file" ] || write_ok_xml True
exit 0
