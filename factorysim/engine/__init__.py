"""Time: discrete events, fault processes, recovery policies, the fifth factor, event logs and replay."""

from .clock import SPEEDS, FakeTime, SimClock
from .faults import Fault, FaultProcess, fault_classes
from .log import SCHEMA_VERSION, EventLog, read_log
from .metrics import RunSummary, TimeSeries, aggregate
from .replay import Replayer, ReplayResult, replay
from .runs import run_one, run_seeds
from .simulation import STATUS, Simulation, Snapshot

__all__ = [
    "SCHEMA_VERSION",
    "SPEEDS",
    "STATUS",
    "EventLog",
    "FakeTime",
    "Fault",
    "FaultProcess",
    "ReplayResult",
    "Replayer",
    "RunSummary",
    "SimClock",
    "Simulation",
    "Snapshot",
    "TimeSeries",
    "aggregate",
    "fault_classes",
    "read_log",
    "replay",
    "run_one",
    "run_seeds",
]  # fmt: skip
