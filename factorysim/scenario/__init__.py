"""What the user describes: scenario models, the catalog, files and their errors."""

from .catalog import Catalog, ChipSpec, FabricSpec, ModelSpec, ScaleUpSpec, catalog, known
from .checks import ParallelLayout, layout_problems, resolve_layout
from .errors import Problem, ScenarioError
from .files import (
    apply_overrides,
    default_scenario_text,
    json_schema,
    load_scenario_file,
    parse_toml,
    read_scenario_data,
    save_scenario,
    scenario_data,
    scenario_toml,
    validate_scenario,
    write_atomically,
)
from .models import (
    ClusterConfig,
    FabricConfig,
    FeaturesConfig,
    ParallelismConfig,
    ReliabilityConfig,
    RunConfig,
    Scenario,
    WorkloadConfig,
)
from .units import Duration, format_duration, human_duration, parse_duration

__all__ = [
    "Catalog", "ChipSpec", "FabricSpec", "ModelSpec", "ScaleUpSpec", "catalog", "known",
    "ParallelLayout", "layout_problems", "resolve_layout", "Problem", "ScenarioError",
    "apply_overrides", "default_scenario_text", "json_schema", "load_scenario_file", "parse_toml",
    "read_scenario_data", "save_scenario", "scenario_data", "scenario_toml", "validate_scenario", "write_atomically",
    "ClusterConfig", "FabricConfig", "FeaturesConfig", "ParallelismConfig", "ReliabilityConfig",
    "RunConfig", "Scenario", "WorkloadConfig", "Duration", "format_duration", "human_duration",
    "parse_duration",
]  # fmt: skip
