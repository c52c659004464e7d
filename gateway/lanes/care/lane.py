"""The care lane: the `CareWatch` pipeline step as a component (its timers saved at stop)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.lanes import Lane, LaneDeps, PipelineStepComponent
from gateway.lanes.care.config import CareSection
from gateway.lanes.care.watch import CareWatch


@dataclass(frozen=True, slots=True)
class HouseholdReport:
    id: str
    missing_data: tuple[str, ...]  # configured devices that have sent nothing yet


@dataclass(frozen=True, slots=True)
class CareReport:
    households: tuple[HouseholdReport, ...]


class CareComponent(PipelineStepComponent):
    name = "care"

    def __init__(self, watch: CareWatch, deps: LaneDeps) -> None:
        self.watch = watch
        self.clock = deps.clock

    async def stop(self) -> None:
        self.watch.close(self.clock.time_ms())

    def report(self) -> CareReport:
        now = self.clock.time_ms()
        return CareReport(
            tuple(HouseholdReport(hid, tuple(w.missing(now))) for hid, w in self.watch.households.items())
        )


REPORT = CareReport  # the type of this lane's report (status.json is read back into it)


def build_lane(section: CareSection, deps: LaneDeps) -> Lane:
    watch = CareWatch(section, deps.book, deps.store, deps.clock.time_ms(), deps.timezone)
    checkpoint = lambda: watch.save(deps.clock.time_ms())  # noqa: E731
    return Lane("care", [CareComponent(watch, deps)], processors=[watch], checkpoint=checkpoint)


def render(report: CareReport) -> list[str]:
    from rich.markup import escape as esc  # names, faults and reasons are data, never markup

    lines = [f"care watch: {len(report.households)} households"]
    lines += [
        f"  [yellow]{esc(h.id)}: no data from {esc(', '.join(h.missing_data))}[/]"
        for h in report.households
        if h.missing_data
    ]
    return lines
