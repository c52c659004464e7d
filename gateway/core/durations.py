"""A span of seconds as people read it: the dashboard's compact form and the tools' spaced one.

One rule for every place that shows an age (an alarm open for…, the outbox's oldest message,
the daemon's uptime), so the same span never reads two ways in two tools.
"""

from __future__ import annotations

# (below this many seconds, divide by, digits after the point, compact unit, spaced unit)
_STEPS = (
    (120, 1, 0, "s", " s"),
    (7200, 60, 0, "m", " min"),
    (172_800, 3600, 1, "h", " h"),
)


def for_people(seconds: float, *, compact: bool = False) -> str:
    """`95 s`, `12 min`, `26.0 h`, `3.2 days`; compact (for narrow columns): `95s`, `12m`, `26.0h`, `3d`."""
    for below, unit_s, digits, short, spaced in _STEPS:
        if seconds < below:
            return f"{seconds / unit_s:.{digits}f}{short if compact else spaced}"
    days = seconds / 86400
    return f"{days:.0f}d" if compact else f"{days:.1f} days"
