"""What the user describes: scenario models, the catalog, files and their errors."""

from .catalog import Catalog, ChipSpec, FabricSpec, ModelSpec, ScaleUpSpec, catalog, known
from .checks import layout_problems
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
    set_value_at,
    validate_scenario,
    value_at,
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
from .parallel import ParallelLayout, resolve_layout
from .units import Duration, format_duration, human_duration, parse_duration

__all__ = [
    "Catalog",
    "ChipSpec",
    "ClusterConfig",
    "Duration",
    "FabricConfig",
    "FabricSpec",
    "FeaturesConfig",
    "ModelSpec",
    "ParallelLayout",
    "ParallelismConfig",
    "Problem",
    "ReliabilityConfig",
    "RunConfig",
    "ScaleUpSpec",
    "Scenario",
    "ScenarioError",
    "WorkloadConfig",
    "apply_overrides",
    "catalog",
    "default_scenario_text",
    "format_duration",
    "human_duration",
    "json_schema",
    "known",
    "layout_problems",
    "load_scenario_file",
    "parse_duration",
    "parse_toml",
    "read_scenario_data",
    "resolve_layout",
    "save_scenario",
    "scenario_data",
    "scenario_toml",
    "set_value_at",
    "validate_scenario",
    "value_at",
    "write_atomically",
]  # fmt: skip
