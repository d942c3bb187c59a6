"""Time: discrete events, fault processes, recovery policies, the fifth factor, event logs and replay."""

from .clock import SPEEDS, FakeTime, SimClock
from .faults import Fault, FaultProcess, fault_classes
from .log import SCHEMA_VERSION, EventLog, read_log
from .metrics import RunSummary, TimeSeries, aggregate
from .replay import Replayer, ReplayResult, replay
from .runs import run_one, run_seeds
from .simulation import STATUS, Simulation, Snapshot

__all__ = [
    "SPEEDS", "FakeTime", "SimClock", "Fault", "FaultProcess", "fault_classes", "SCHEMA_VERSION", "EventLog",
    "read_log", "RunSummary", "TimeSeries", "aggregate", "Replayer", "ReplayResult", "replay", "run_one", "run_seeds",
    "STATUS", "Simulation", "Snapshot",
]  # fmt: skip
