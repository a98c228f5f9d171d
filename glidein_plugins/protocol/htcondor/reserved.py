"""Attribute names a plugin may not publish: HTCondor, GlideinWMS and ``condor_startup.sh`` own
them.

A published attribute becomes a glidein_config key and a condor_vars.lst line; then
``condor_startup.sh`` writes ``NAME=value`` into the startd's configuration **and** runs
``eval "NAME='value'"`` in its own shell. A plugin publishing ``START`` or ``SEC_...`` would so
rewrite the startd's policy or security, ``CONDOR_VARS_FILE`` or ``ADD_CONFIG_LINE_SOURCE`` would
redirect the GlideinWMS scripts that follow, ``CONDOR_DIR`` or ``PATH`` would change the
programs ``condor_startup.sh`` starts. :func:`why` says which rule a name breaks.

The rules are families (``NAME`` exactly, ``PREFIX*``, ``*SUFFIX``), plus the knobs of
HTCondor 25 no family covers; ``tests/test_classad.py`` holds them against every configuration
name ``htcondor2.param`` knows, and the package's own attributes against both. HTCondor's
configuration names are case-insensitive, and so are the rules, but for the last (bash's
variable names are not). The ``Runner`` applies them to what plugins contribute; an operator
sets startd knobs through GlideinWMS's own entry configuration, which no plugin goes through.
"""

from __future__ import annotations

import re

_CONFIG = "condor_startup.sh writes every published attribute into the startd's configuration"

# (what the names are, why publishing one is wrong, the names: NAME, PREFIX*, *SUFFIX, or
# ~REGEX for a number or a run-on word: SLOT1_USER, HasDocker, TotalGPUs, DetectedMemory)
_FAMILIES = (
    ("a glidein_config key GlideinWMS relies on",
     "the GlideinWMS scripts that follow read it from glidein_config", """
        ADD_CONFIG_LINE_SOURCE ERROR_GEN_PATH WRAPPER_LIST SLOTS_LAYOUT TMP_DIR PROXY_URL
        DEBUG_MODE MONITOR_MODE HEAD_NODE USE_MATCH_AUTH DESCRIPTION_FILE DESCRIPTION_ENTRY_FILE
        CONDOR_VARS_FILE *_CONDOR_VARS_FILE *_UNTAR_CFG_FILE *_WORK_DIR *_SOURCE
        GLIDECLIENT_* CONDORG_* X509_* GLEXEC_* GLIDEIN_PS_* GLIDEIN_X509_* GLIDEIN_ADVERTISE_*
        GLIDEIN_BLACKHOLE* GLIDEIN_Factory GLIDEIN_Name GLIDEIN_Entry_Name GLIDEIN_UUID
        GLIDEIN_CredentialIdentifier GLIDEIN_STARTUP_PID GLIDEIN_LOCAL_TMP_DIR GLIDEIN_Signature
        GLIDEIN_Entry_Signature GLIDEIN_INITIALIZED GLIDEIN_Failed GLIDEIN_EXIT_CODE
        GLIDEIN_LAST_SCRIPT GLIDEIN_FAILURE_REASON GLIDEIN_ToDie GLIDEIN_ToRetire GLIDEIN_Expire
        GLIDEIN_START_TIME GLIDEIN_VARIABLES GLIDEIN_PARENT_PID GLIDEIN_CPUS GLIDEIN_MaxMemMBs
        GLIDEIN_DISK GLIDEIN_Resource_Slots GLIDEIN_Max_Walltime GLIDEIN_Job_Max_Time
        GLIDEIN_Max_Idle GLIDEIN_Max_Tail GLIDEIN_Graceful_Shutdown GLIDEIN_Retire_Time
        GLIDEIN_Retire_Time_Spread GLIDEIN_Expose_X509 GLIDEIN_Expose_Grid_Env
        GLIDEIN_Ignore_X509_Duration GLIDEIN_Monitoring_Enabled GLIDEIN_Report_Failed
        GLIDEIN_Factory_Report_Failed GLIDEIN_Factory_Collector GLIDEIN_Collector GLIDEIN_CCB
        GLIDEIN_WRAPPER_EXEC GLIDEIN_CONDOR_TOKEN GLIDEIN_condor_config_startd_cron_include
        GLIDEIN_Condor_IDS GLIDEIN_Start GLIDEIN_Entry_Start GLIDEIN_Custom_Start GLIDEIN_Rank
        GLIDEIN_Entry_Rank GLIDEIN_Hold GLIDEIN_PREEMPT GLIDEIN_Use_TCP GLIDEIN_Use_PGroups
        GLIDEIN_Tmp_Dir GLIDEIN_ClusterId GLIDEIN_ProcId GLIDEIN_Schedd GLIDEIN_Proxy_URL
        GLIDEIN_Glexec_Use GLIDEIN_Description_File GLIDEIN_Description_Entry_File"""),
    ("an HTCondor security setting", _CONFIG, r"""
        SEC_* ALLOW_* DENY_* HOSTALLOW_* HOSTDENY_* AUTH_* GSI_* SSL_* KERBEROS_* MUNGE_*
        TOKEN_* TOKENS_* SCITOKENS_* TRUST_* CERTIFICATE_* DELEGATE_* CREDD CREDD_* CREDMON_*
        CRED_* QUEUE_* BOOTSTRAP_* UID_DOMAIN SOFT_UID_DOMAIN FILESYSTEM_DOMAIN NOBODY_SLOT_USER
        ~SLOT\d*_USER DEDICATED_EXECUTE_ACCOUNT_REGEXP *_AUTHORIZATION_URL *_TOKEN_URL"""),
    ("an HTCondor startd policy expression", _CONFIG, """
        START SUSPEND CONTINUE PREEMPT KILL RANK IS_OWNER IsOwner POLICY KILLING_TIMEOUT
        WANT_* START_* PREEMPTION_* CLAIM_* CONSUMPTION_* PERIODIC_* MaxJobRetirementTime
        MachineMaxVacateTime MaxVacateTime MaxSuspendTime ActivityTimer BackgroundLoad
        BenchmarkTimer BigJob MediumJob SmallJob HighLoad ContinueIdleTime StartIdleTime
        StateTimer CondorIsAdmin RunBenchmarks IsCollector IsMaster IsMPI IsNegotiator IsSchedd
        IsShadow IsStandard IsStartd IsStarter IsSubmit IsTool IsVanilla IsVM IsWindows
        STANDARD VANILLA MPI VM VM_* JAVA JAVA_*"""),
    ("an HTCondor daemon's setting", _CONFIG, """
        MASTER MASTER_* STARTD STARTD_* STARTER STARTER_* SCHEDD SCHEDD_* SHADOW SHADOW_*
        COLLECTOR COLLECTOR_* NEGOTIATOR NEGOTIATOR_* PROCD PROCD_* KBDD KBDD_* SHARED_PORT
        SHARED_PORT_* CCB_* GRIDMANAGER GRIDMANAGER_* ~(.*_)?GAHP(_.*)? JOB_ROUTER
        DAGMAN_* HAD HAD_* REPLICATION REPLICATION_* DEFRAG DEFRAG_* ROOSTER ROOSTER_* GANGLIAD
        GANGLIAD_* GANGLIA_* LIBRARIAN LIBRARIAN_* METRICD_* ADSTASH_* ANNEX_* TRANSFERER
        TRANSFERER_* PLACEMENTD PLACEMENTD_* BENCHMARKS_* PREEN PREEN_* DAEMON_* DC_DAEMON_*
        BLAHPD_* STATISTICS_* TRUNC_* SCHED_* NOT_RESPONDING_* UPDATE_* ALIVE_* MATCH_*
        CLASSAD_* EVENT_LOG_* LOG_* PROMETHEUS_* *_ARGS *_ENVIRONMENT *_ATTRS *_EXPRS *_DEBUG
        *_LOG *_ADDRESS_FILE *_DAEMON_AD_FILE"""),
    ("an HTCondor setting of how jobs run", _CONFIG, """
        USER_JOB_WRAPPER *_JOB_WRAPPER JOB_* EXECUTE LOCAL_UNIV_EXECUTE DOCKER DOCKER_*
        SINGULARITY SINGULARITY_JOB SINGULARITY_IMAGE_EXPR SINGULARITY_BIND_EXPR
        SINGULARITY_BIND_BASE SINGULARITY_TARGET_DIR SINGULARITY_EXTRA_ARGUMENTS
        SINGULARITY_USE_PID_NAMESPACES SINGULARITY_IGNORE_MISSING_BIND_TARGET
        SINGULARITY_RUN_TEST_BEFORE_JOB SINGULARITY_VERBOSITY SINGULARITY_USE_LAUNCHER
        SINGULARITY_ADD_ROCM_FLAG SINGULARITY_MOUNT_HOME SINGULARITY_TEST_SANDBOX*
        SINGULARITY_IS_SETUID SINGULARITY_IS_CONTAINER SINGULARITY_KEEP_* SINGULARITY_ADD_*
        SINGULARITY_ENV_* CONTAINER_* MOUNT_* CGROUP_* BASE_CGROUP ENCRYPT_* SYSTEM_* SUBMIT_*
        INTERACTIVE_SUBMIT_* CHIRP_* TRANSFER_* FILE_TRANSFER_* FILETRANSFER_PLUGINS
        STASH_PLUGIN MODIFY_REQUEST_EXPR_* ENVIRONMENT_* LVM_* OPENMPI_* PER_JOB_NAMESPACES"""),
    ("an HTCondor setting of the slots and their resources", _CONFIG, r"""
        NUM_* SLOT_* SLOTS_* ~SLOT\d+(_.*)? MEMORY DISK SWAP CPUS RESERVED_* EXTRA_*
        MACHINE_RESOURCE_* OFFLINE_MACHINE_RESOURCE_* GPU_DISCOVERY* GPU_MONITOR*
        COUNT_HYPERTHREAD_CPUS DETECTED_* KEYBOARD_CPUS CONSOLE_DEVICES NEW_RESOURCES_LIST
        MEMORY_USAGE_METRIC*"""),
    ("an HTCondor path, host or configuration file", _CONFIG, """
        CONDOR_* LOCAL_* RELEASE_DIR LOG SPOOL LOCK RUN BIN SBIN LIB LIBEXEC ETC HISTORY
        HISTORY_* POOL_HISTORY_* HTTP_PUBLIC_FILES_* REQUIRE_LOCAL_CONFIG_FILE USER_CONFIG_FILE
        INCLUDE USE IF ELSE ELIF ENDIF ERROR WARNING MAIL SENDMAIL HOSTNAME FULL_HOSTNAME
        HOST_ALIAS IP_ADDRESS IPV4_ADDRESS IPV6_ADDRESS IP_ADDRESS_IS_IPV6 NETWORK_*
        PRIVATE_NETWORK_* FLOCK_* TCP_* UDP_* DNS_* FS_* GROUP_* NICE_USER_* PARENT_CHECK_*
        BIND_ALL_INTERFACES NO_DNS DEFAULT_DOMAIN_NAME ENABLE_IPV4 ENABLE_IPV6 PREFER_IPV4
        PREFER_IPV6 PREFER_OUTBOUND_IPV4 PREFER_OUTBOUND_IPV6 LOWPORT HIGHPORT IN_LOWPORT
        IN_HIGHPORT OUT_LOWPORT OUT_HIGHPORT *_PORT"""),
    ("an HTCondor switch or limit", _CONFIG, """
        MAX_* MIN_* USE_* ENABLE_* DISABLE_* IGNORE_* DEFAULT_* AUTO_* KEEP_* CREATE_* ALWAYS_*
        SIGN_* ACCOUNTANT_* ACCOUNTING_* GLOBAL_JOB_ID_* REMOVE_SIGNIFICANT_ATTRIBUTES*
        XEN_* SYSAPI_* WINDOWS_FIREWALL_* LINUX_KERNEL_TUNING_*"""),
    ("a macro HTCondor defines itself", _CONFIG, """
        ARCH OPSYS* UNAME_* UTSNAME_* SUBSYSTEM LOCALNAME USERNAME PID PPID REAL_UID REAL_GID
        HOUR MINUTE TILDE DOLLAR"""),
    ("an HTCondor configuration knob", _CONFIG, """
        ABORT_ON_EXCEPTION ADD_WINDOWS_FIREWALL_EXCEPTION ADVERTISE_IPV4_FIRST
        ASSIGN_CPU_AFFINITY CATALOG_SPACE CGAHP_SCHEDD_INTERACTION_TIME
        CHECKPOINT_DESTINATION_MAPFILE CHECK_REACTIVATE_AFTER_CHECKPOINT CHOWN_JOB_SPOOL_FILES
        CONCURRENCY_LIMIT_DEFAULT CONTINUE_TO_ADVERTISE_BROKEN_DYNAMIC_SLOTS CORE_FILE_NAME
        CURB_MATCHMAKING DCSTATISTICS_TIMESPANS DEAD_COLLECTOR_MAX_AVOIDANCE_TIME
        DEBUG_TIME_FORMAT DEDICATED_SCHEDULER_USE_FIFO DISCARD_SESSION_KEYRING_ON_STARTUP
        DISCONNECTED_KEYBOARD_IDLE_BOOST FILE_LOCK_VIA_MUTEX FORCE_NEGOTIATOR_SLOT_WEIGHT
        GRACEFULLY_REMOVE_JOBS HAVE_EXT_KRB5 HPC_ANNEX_ENABLED KEYRING_SESSION_CREATION_TIMEOUT
        LIBVIRT_XML_SCRIPT LOCK_DEBUG_LOG_TO_APPEND LOGS_USE_TIMESTAMP
        NEGOTIATION_CYCLE_STATS_LENGTH NONBLOCKING_COLLECTOR_UPDATE OBITUARY_LOG_LENGTH
        PASSWD_CACHE_REFRESH PID_SNAPSHOT_INTERVAL PIPE_BUFFER_MAX POLLING_INTERVAL
        PRIORITY_HALFLIFE QUERY_TIMEOUT Q_QUERY_TIMEOUT RECEIVE_MSGS_DURATION
        RECONNECT_BACKOFF_CEILING REMOTE_PRIO_FACTOR RESTART_PROCD_ON_ERROR
        RUN_FILETRANSFER_PLUGINS_WITH_ROOT SCHEDULER_UNIVERSE_COOL_DOWN_DURATION
        SHUTDOWN_FAST_TIMEOUT SHUTDOWN_GRACEFUL_TIMEOUT SOCKET_LISTEN_BACKLOG SUM_OF_CATALOGS
        TOOLS_ASSUME_FIREWALLS TOUCH_LOG_INTERVAL UNUSED_CLAIM_TIMEOUT USING_LIBRARIAN
        WARN_ON_UNUSED_SUBMIT_FILE_MACROS"""),
    ("a machine ClassAd attribute the startd computes", "publishing it would fight HTCondor", """
        Name Machine MyType TargetType MyAddress MyCurrentTime Requirements Activity State
        VirtualMemory SlotID SlotType SlotTypeID SlotWeight PartitionableSlot DynamicSlot
        EnteredCurrentState EnteredCurrentActivity LoadAvg CondorLoadAvg TotalLoadAvg
        TotalCondorLoadAvg KeyboardIdle ConsoleIdle Mips KFlops UidDomain FileSystemDomain
        StartdIpAddr CurrentRank RemoteUser RemoteOwner ClientMachine JobId GlobalJobId JobStart
        AccountingGroup DaemonStartTime DaemonLastReconfigTime UpdateSequenceNumber
        LastHeardFrom ~(Has|Total|Detected|Child)[A-Z0-9]+"""),
    ("a variable of the shell or the dynamic loader",
     "condor_startup.sh sets a shell variable of that name to the value", """
        PATH IFS HOME PWD OLDPWD SHELL ENV BASH* CDPATH GLOBIGNORE SHELLOPTS PS1 PS2 PS3 PS4
        POSIXLY_CORRECT PROMPT_COMMAND TMPDIR LANG LANGUAGE LC_* LD_* TZ TERM _ UID EUID GROUPS
        RANDOM SECONDS LINENO OPTIND OPTARG REPLY HISTFILE USER LOGNAME HOSTTYPE OSTYPE MACHTYPE
        PYTHON* PERL5LIB PERLLIB _CONDOR_*"""),
)
_LOWER_CASE = ("a name without capital letters (condor_startup.sh keeps its own shell variables "
               "in such names, and sets one for every published attribute)")


def _compile() -> tuple[dict[str, int], tuple[tuple[str, int], ...], tuple[tuple[str, int], ...],
                        tuple[tuple[re.Pattern[str], int], ...]]:
    exact: dict[str, int] = {}
    prefixes: list[tuple[str, int]] = []
    suffixes: list[tuple[str, int]] = []
    patterns: list[tuple[re.Pattern[str], int]] = []
    for rule, (_, _, names) in enumerate(_FAMILIES):
        for word in names.lower().split():
            if word.startswith("~"):
                patterns.append((re.compile(word[1:]), rule))  # matched lower-cased
            elif word.endswith("*"):
                prefixes.append((word[:-1], rule))
            elif word.startswith("*"):
                suffixes.append((word[1:], rule))
            else:
                exact.setdefault(word, rule)
    return exact, tuple(prefixes), tuple(suffixes), tuple(patterns)


_EXACT, _PREFIXES, _SUFFIXES, _PATTERNS = _compile()
_PREFIX_TUPLE = tuple(prefix for prefix, _ in _PREFIXES)
_SUFFIX_TUPLE = tuple(suffix for suffix, _ in _SUFFIXES)


def _rule(name: str) -> int | None:
    """The index in ``_FAMILIES`` of the first rule ``name`` breaks (None if none)."""
    low = name.lower()
    if low in _EXACT:
        return _EXACT[low]
    if low.startswith(_PREFIX_TUPLE):
        return next(rule for prefix, rule in _PREFIXES if low.startswith(prefix))
    if low.endswith(_SUFFIX_TUPLE):
        return next(rule for suffix, rule in _SUFFIXES if low.endswith(suffix))
    return next((rule for pattern, rule in _PATTERNS if pattern.fullmatch(low)), None)


def why(name: str) -> str:
    """Why a plugin may not publish the attribute ``name``; '' when it may."""
    rule = _rule(name)
    if rule is not None:
        what, because, _ = _FAMILIES[rule]
        return f"{name} is reserved: {what} ({because}); publish another name"
    if name == name.lower():
        return f"{name} is reserved: {_LOWER_CASE}; publish another name"
    return ""
