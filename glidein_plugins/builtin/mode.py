"""Built-in plugin ``mode``: the GlideinWMS Singularity mode negotiation.

The Frontend's ``GLIDEIN_Singularity_Use`` (empty: DISABLE_GWMS) meets the Factory entry's
``GLIDEIN_SINGULARITY_REQUIRE`` (empty: OPTIONAL); values are read case-insensitively, with
surrounding spaces ignored. Anything else is a FAIL naming the bad value and where it was set.
"""

from __future__ import annotations

from glidein_plugins import hookimpl
from glidein_plugins.container.mode import (
    FACTORY_KEY,
    FACTORY_VALUES,
    FRONTEND_KEY,
    FRONTEND_VALUES,
    negotiate,
)
from glidein_plugins.spec.context import Context
from glidein_plugins.spec.results import Mode, ModeDecision


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
