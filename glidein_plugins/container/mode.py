"""GlideinWMS's Singularity mode negotiation: the Frontend's ``GLIDEIN_Singularity_Use`` (empty:
DISABLE_GWMS) meets the Factory entry's ``GLIDEIN_SINGULARITY_REQUIRE`` (empty: OPTIONAL) in
``TABLE``. Used by the built-in ``mode`` plugin and by the config check."""

from __future__ import annotations

from glidein_plugins.spec.results import Mode

FRONTEND_KEY = "GLIDEIN_Singularity_Use"
FACTORY_KEY = "GLIDEIN_SINGULARITY_REQUIRE"
FRONTEND_VALUES = ("DISABLE_GWMS", "NEVER", "OPTIONAL", "PREFERRED", "REQUIRED")
FACTORY_VALUES = ("NEVER", "OPTIONAL", "PREFERRED", "REQUIRED", "REQUIRED_GWMS")

_D, _N, _P, _R, _F = Mode.DISABLE, Mode.NEVER, Mode.PREFERRED, Mode.REQUIRED, Mode.FAIL
# rows: Frontend value, columns: Factory value (in the order of FACTORY_VALUES)
_ROWS = {
    "DISABLE_GWMS": (_D, _D, _D, _D, _F),
    "NEVER": (_N, _N, _N, _F, _F),
    "OPTIONAL": (_N, _N, _P, _R, _R),
    "PREFERRED": (_N, _P, _P, _R, _R),
    "REQUIRED": (_F, _R, _R, _R, _R),
}
TABLE: dict[tuple[str, str], Mode] = {
    (frontend, factory): outcome
    for frontend, row in _ROWS.items()
    for factory, outcome in zip(FACTORY_VALUES, row)
}


def negotiate(frontend: str, factory: str) -> tuple[Mode, str]:
    """The outcome of the table for two (normalised) values, with the reason."""
    outcome = TABLE[(frontend, factory)]
    verb = "is incompatible with" if outcome is Mode.FAIL else "with"
    return outcome, (f"Frontend {FRONTEND_KEY}={frontend} {verb} Factory "
                     f"{FACTORY_KEY}={factory}: {outcome.value}")
