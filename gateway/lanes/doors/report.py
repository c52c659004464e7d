"""The doors' report (status.json, stats, `lintel status`): each door's relay state and counts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DoorReport:
    id: str
    relay: str  # released, energised, releasing (a switch-off is being retried), unknown
    pulses: int
    failures: int
    hardware_timed: bool
    fault: str | None


@dataclass(frozen=True, slots=True)
class DoorsReport:
    pulses: int
    failures: int
    doors: tuple[DoorReport, ...]


def render(report: DoorsReport) -> list[str]:
    """`lintel status` lines for the doors (rich markup)."""
    from rich.markup import escape as esc  # names, faults and reasons are data, never markup

    lines = [f"doors: {report.pulses} pulses, {report.failures} failures"]
    for d in report.doors:
        colour = "green" if d.relay == "released" else ("yellow" if d.relay == "energised" else "red")
        extra = f" ({esc(d.fault)})" if d.fault else ""
        lines.append(f"  [{colour}]{esc(d.id)}: relay {esc(d.relay)}{extra}[/]")
    return lines
