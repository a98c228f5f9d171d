"""Built-in plugin ``mode``: the GlideinWMS Singularity mode negotiation.

The Frontend's ``GLIDEIN_Singularity_Use`` (empty: DISABLE_GWMS) meets the Factory entry's
``GLIDEIN_SINGULARITY_REQUIRE`` (empty: OPTIONAL); values are read case-insensitively, with
surrounding spaces ignored. Anything else is a FAIL naming the bad value and where it was set.
"""

from __future__ import annotations

from glidein_plugins import hookimpl
from glidein_plugins.spec.context import Context
from glidein_plugins.spec.results import Mode, ModeDecision

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


def _read(context: Context, key: str, default: str, allowed: tuple[str, ...]) -> tuple[str, str]:
    """``(normalised value, error)`` for one side of the negotiation."""
    raw = context.get(key, "") or ""
    value = raw.strip().upper() or default
    if value in allowed:
        return value, ""
    where = context.where(key)
    return raw, (f"{key}={raw!r}" + (f" ({where})" if where else "")
                 + f" is not one of {', '.join(allowed)}")


@hookimpl(trylast=True)
def glidein_mode_negotiate(context: Context) -> ModeDecision:
    frontend, bad_frontend = _read(context, FRONTEND_KEY, "DISABLE_GWMS", FRONTEND_VALUES)
    factory, bad_factory = _read(context, FACTORY_KEY, "OPTIONAL", FACTORY_VALUES)
    errors = [error for error in (bad_frontend, bad_factory) if error]
    if errors:
        return ModeDecision(Mode.FAIL, frontend, factory, "; ".join(errors))
    outcome, reason = negotiate(frontend, factory)
    return ModeDecision(outcome, frontend, factory, reason)
