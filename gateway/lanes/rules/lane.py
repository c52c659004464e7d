"""The rules lane: the alarm rules pipeline step as a component."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.lanes import Lane, LaneDeps, PipelineStepComponent
from gateway.lanes.rules.config import Rule
from gateway.lanes.rules.engine import RulesProcessor


@dataclass(frozen=True, slots=True)
class RulesReport:
    rules: int
    suppressed_readings: int  # readings a deadband rule kept from the outbox


class RulesComponent(PipelineStepComponent):
    """Its timers are saved at every transition: nothing to do at stop."""

    name = "rules"

    def __init__(self, processor: RulesProcessor, count: int) -> None:
        self.processor = processor
        self.count = count

    def report(self) -> RulesReport:
        return RulesReport(self.count, self.processor.suppressed)


REPORT = RulesReport  # the type of this lane's report (status.json is read back into it)


def build_lane(rules: list[Rule], deps: LaneDeps) -> Lane:
    processor = RulesProcessor(rules, deps.book, deps.store)
    return Lane("rules", [RulesComponent(processor, len(rules))], processors=[processor])


def render(report: RulesReport) -> list[str]:
    return [f"rules: {report.rules} rules, {report.suppressed_readings} readings suppressed by deadbands"]
