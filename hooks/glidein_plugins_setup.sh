#!/bin/sh
# shellcheck disable=SC2154  # python, python_version, tried, launcher: from glidein_plugins_python.sh
# glidein_plugins_setup.sh: the GlideinWMS setup script of glidein_plugins.
#
# glidein_startup.sh runs it as `glidein_plugins_setup.sh glidein_config ID </dev/null` with the
# glidein work dir as the current directory (glidein_config is a relative path there). It lives in
# the untarred package directory:
#
#   DIR/hooks/glidein_plugins_setup.sh   this script
#   DIR/glidein_plugins/                 the package (pluggy and PyYAML beside it, or installed
#                                        for the node's Python)
#   DIR/factory_configs/*.yaml           the factory's per-entry configuration
#
# It finds a Python >= 3.9 and runs `glidein_plugins setup`, which publishes the attributes and
# writes otrb_output.xml. Without a usable Python, or when Python leaves no otrb_output.xml, it
# writes the failure XML itself, so the glidein always reports why it stopped.
#
# Environment:
#   GLIDEIN_PLUGINS_PYTHON          an interpreter to try first (a path or a command name)
#   GLIDEIN_PLUGINS_PYTHON_CANDIDATES  the interpreters to try after it, space-separated
#                                   (default: python3 python3.14 ... python3.9 python
#                                   /usr/bin/python3 /usr/libexec/platform-python)
#   GLIDEIN_PLUGINS_PYTHON_TIMEOUT  seconds each interpreter's version check may take (10)
# POSIX sh only: it runs under dash, busybox sh and bash alike.

glidein_config=$1
script_id=${2:-entry}
xml_file=otrb_output.xml
me=glidein_plugins_setup.sh

say() {
    printf '%s: %s\n' "$me" "$*" >&2
}

# Text made safe for XML: on one line, without control characters, with & < > " escaped.
xml_text() {
    printf '%s' "$1" | tr '\n\r\t' '   ' | tr -d '\000-\010\013\014\016-\037' |
        sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'
}

# YYYY-MM-DDTHH:MM:SS+hh:mm, as GlideinWMS error_gen writes it.
timestamp() {
    date +%Y-%m-%dT%H:%M:%S%z | sed 's/\([+-][0-9][0-9]\)\([0-9][0-9]\)$/\1:\2/'
}

# write_failure TYPE DETAIL: the OSGTestResult 4.3.1 error XML, written atomically.
write_failure() {
    ts=$(timestamp)
    tmp=".$xml_file.$$"
    {
        printf '<?xml version="1.0"?>\n'
        printf '<OSGTestResult id="%s" version="4.3.1">\n' "$(xml_text "$script_id")"
        printf '  <result>\n'
        printf '    <status>ERROR</status>\n'
        printf '    <metric name="failure" ts="%s" uri="local">%s</metric>\n' "$ts" "$1"
        printf '  </result>\n'
        printf '  <detail>\n'
        printf '    %s\n' "$(xml_text "$2")"
        printf '  </detail>\n'
        printf '</OSGTestResult>\n'
    } >"$tmp" && mv -f "$tmp" "$xml_file"
    say "FAILED ($1): $2"
}

fail() {
    write_failure "$1" "$2"
    exit 1
}

rm -f "$xml_file"  # a stale result from an earlier script must not be reported as ours

if [ -z "$glidein_config" ]; then
    fail Config "usage: $me glidein_config [ID] (no glidein_config given)"
fi

# The package directory: the parent of the directory this script is in.
case $0 in
    */*) hook_dir=${0%/*} ;;
    *) hook_dir=. ;;
esac
# In the tarball this script is DIR/hooks/THIS; shipped by GlideinWMS as a file of its own, it
# lies beside the untar directory (untar_options dir="glidein_plugins"), which is DIR.
pkg_dir=""
for dir in "$hook_dir/glidein_plugins" "$hook_dir/.."; do
    if [ -d "$dir/glidein_plugins" ] && pkg_dir=$(cd "$dir" 2>/dev/null && pwd -P); then
        break
    fi
    pkg_dir=""
done
if [ -z "$pkg_dir" ]; then
    fail Corruption "cannot find the glidein_plugins package beside $0 (expected $hook_dir/glidein_plugins/glidein_plugins or $hook_dir/../glidein_plugins)"
fi

scratch=".glidein_plugins_setup.$$"
trap 'rm -f "$scratch.out" "$scratch.err"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

library="$pkg_dir/hooks/glidein_plugins_python.sh"
if [ ! -r "$library" ]; then
    fail Corruption "cannot read $library (an incomplete glidein_plugins tarball?)"
fi
# shellcheck source=/dev/null  # the library, checked on its own
. "$library"

find_python
if [ -z "$python" ]; then
    fail WN_Resource "glidein_plugins needs Python 3.9 or newer; none found. Tried: $tried"
fi
if [ -n "$tried" ]; then
    say "skipped: $tried"
fi
say "using $python (Python $python_version) for $pkg_dir"

"$python" -s -E -c "$launcher" "$pkg_dir" setup --config-dir "$pkg_dir/factory_configs" \
    "$glidein_config" "$script_id" </dev/null 2>"$scratch.err"
rc=$?
cat "$scratch.err" >&2

if [ ! -f "$xml_file" ]; then
    last=$(tail -n 1 "$scratch.err")
    if [ "$rc" -eq 3 ]; then
        fail WN_Resource "$python (Python $python_version): $last"
    fi
    fail Corruption "glidein_plugins setup (run by $python) exited with code $rc without writing $xml_file${last:+: $last}"
fi
exit "$rc"
