#!/bin/bash
# A stand-in for what GlideinWMS's singularity_setup.sh writes when it publishes, for the tests
# that run it beside ours in one glidein (either order). Written for these tests from reading
# glideinWMS/glideinwms creation/web_base/{singularity_setup.sh,singularity_lib.sh,
# add_config_line.source} (commit efdc530a, 2026-02-27); none of their code is in it.
#
# What it reproduces:
# - advertise KEY VALUE TYPE: glidein_config gets "KEY VALUE" (every older "KEY " line dropped,
#   the new one appended, unless that exact line is already there; one "REG<pid> KEY VALUE" line
#   appended to glidein_config.history), and condor_vars.lst gets "KEY TYPE - + Y Y +" (every
#   line starting with KEY as a word dropped first): no default, same name, Required=Y,
#   exported to the startd and to the job;
# - on success: HAS_SINGULARITY=True and the status, path, version, full version and mode under
#   its names, SINGULARITY_IMAGES_DICT as glidein_config holds it, GLIDEIN_REQUIRED_OS=any,
#   GLIDEIN_DEBUG_OUTPUT when set, GLIDEIN_PROVIDES with ",singularity/MODE" appended;
# - without Singularity (NEVER, or PREFERRED with no runtime/image): HAS_SINGULARITY=False and
#   the status.
#
# Usage: singularity_advertise.sh GLIDEIN_CONFIG True STATUS PATH VERSION FULL_VERSION MODE
#        singularity_advertise.sh GLIDEIN_CONFIG False STATUS
set -u
config=$1
outcome=$2
status=$3

get() {  # the last "KEY value" line wins, as gconfig_get reads it
    tac "$config" | grep -m1 "^$1 " | cut -d ' ' -f 2-
}

vars_file=$(get CONDOR_VARS_FILE)

put() {  # KEY VALUE: glidein_config as gconfig_add writes it
    printf 'REG%s %s %s\n' "$$" "$1" "$2" >>"$config.history"
    if ! grep -qxF -- "$1 $2" "$config"; then
        grep -v "^$1 " "$config" >"$config.$$.tmp"
        printf '%s %s\n' "$1" "$2" >>"$config.$$.tmp"
        mv "$config.$$.tmp" "$config"
    fi
}

advertise() {  # KEY VALUE TYPE
    put "$1" "$2"
    grep -v "^$1\b" "$vars_file" >"$vars_file.$$.tmp"
    printf '%s %s - + Y Y +\n' "$1" "$3" >>"$vars_file.$$.tmp"
    mv "$vars_file.$$.tmp" "$vars_file"
}

if [[ "$outcome" != True ]]; then
    advertise HAS_SINGULARITY False C
    advertise GWMS_SINGULARITY_STATUS "$status" S
    exit 0
fi
path=$4 version=$5 full=$6 mode=$7
advertise HAS_SINGULARITY True C
advertise GWMS_SINGULARITY_STATUS "$status" S
advertise SINGULARITY_PATH "$path" S
advertise GWMS_SINGULARITY_PATH "$path" S
advertise SINGULARITY_VERSION "$version" S
advertise GWMS_SINGULARITY_VERSION "$version" S
advertise SINGULARITY_FULL_VERSION "$full" S
advertise SINGULARITY_MODE "$mode" S
advertise GWMS_SINGULARITY_MODE "$mode" S
for prefix in CONTAINERSW_ GWMS_CONTAINERSW_; do
    advertise "${prefix}PATH" "$path" S
    advertise "${prefix}VERSION" "$version" S
    advertise "${prefix}FULL_VERSION" "$full" S
    advertise "${prefix}MODE" "$mode" S
done
advertise SINGULARITY_IMAGES_DICT "$(get SINGULARITY_IMAGES_DICT)" S
advertise GLIDEIN_REQUIRED_OS any S
debug=$(get GLIDEIN_DEBUG_OUTPUT)
[[ -n "$debug" ]] && advertise GLIDEIN_DEBUG_OUTPUT "$debug" S
provides=$(get GLIDEIN_PROVIDES)
advertise GLIDEIN_PROVIDES "${provides:+$provides,}singularity/$mode" S
exit 0
