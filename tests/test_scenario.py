"""Scenario files: what loads, what is refused, and how the refusal reads."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

from factorysim import load_scenario
from factorysim.scenario import (
    ScenarioError,
    catalog,
    default_scenario_text,
    json_schema,
    load_scenario_file,
    parse_duration,
    resolve_layout,
    save_scenario,
    scenario_toml,
    validate_scenario,
)
from factorysim.scenario.units import clock_text, format_duration, human_duration, short_duration

from .conftest import SCENARIOS, custom_scenario, scenario


def problems(*overrides: str, path=None) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides)
    return [str(p) for p in info.value.problems]


def test_embedded_default_is_the_shipped_default_file():
    assert default_scenario_text() == (SCENARIOS / "default.toml").read_text()


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_scenario_loads_fits_and_names_its_sources(path: Path):
    s = load_scenario(path)
    assert "source" in s.description.lower()
    assert s.name == path.stem or path.stem == "default"


def test_scenario_sizes_span_the_range_the_tool_promises():
    chips = sorted(load_scenario(p).cluster.total_chips for p in SCENARIOS.glob("*.toml"))
    assert chips[0] == 64
    assert chips[-1] == 100_000
    assert any(load_scenario(p).cluster.chip_name == "MTT-S4000" for p in SCENARIOS.glob("*.toml"))


def test_unknown_key_names_its_path_and_the_allowed_keys():
    [msg] = problems("cluster.fabric.speed=400")
    assert msg.startswith("cluster.fabric.speed: unknown key")
    assert "nic_gbps" in msg and "oversubscription" in msg


def test_bad_choice_names_the_value_and_the_allowed_ones():
    [msg] = problems("workload.precision=fp16")
    assert msg == 'workload.precision: got "fp16"; allowed: "bf16" or "fp8"'


def test_unknown_catalog_name_lists_the_known_ones():
    [msg] = problems("cluster.chip=H900")
    assert 'unknown chip "H900"' in msg
    for name in ("A100-SXM-80GB", "H100-SXM-80GB", "MTT-S4000", "MTT-S5000", "B200", "MI300X", "H200-SXM"):
        assert name in msg


def test_all_schema_problems_are_reported_at_once():
    msgs = problems("workload.precision=fp16", "cluster.chip=nope", "run.duration=3 fortnights")
    assert len(msgs) == 3
    assert {m.split(":")[0] for m in msgs} == {"workload.precision", "cluster.chip", "run.duration"}


def test_toml_syntax_error_names_line_and_column(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('name = "x"\n[cluster]\nnodes = = 4\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(f)
    text = info.value.render()
    assert "line 3, column" in text and "nodes = = 4" in text and str(f) in text


def test_missing_file_is_a_clear_error():
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario("does/not/exist.toml")


def test_degrees_must_multiply_to_the_chips_of_the_job():
    msg = next(m for m in problems("parallelism.dp=30") if m.startswith("parallelism.dp"))
    assert msg.startswith("parallelism.dp: tp·cp·pp·dp = 2·1·1·30 = 60 chips")
    assert "(8 - 0) x 8 = 64" in msg and "parallelism.dp = 32" in msg


def test_tp_must_stay_inside_the_scale_up_domain_and_says_why():
    msgs = problems("parallelism.tp=16", "parallelism.dp=auto")
    assert any(m.startswith("parallelism.tp: 16 exceeds the scale-up domain of 8 chips") for m in msgs)
    assert any("scale-out fabric" in m for m in msgs)


def test_batch_must_divide_by_dp_times_micro_batch():
    [msg] = problems("workload.global_batch=100")
    assert msg.startswith("workload.global_batch: 100 sequences is not divisible by dp x micro_batch = 32 x 1")


def test_memory_that_does_not_fit_shows_the_figures_and_what_would_fit():
    [msg] = problems("workload.model=llama3-70b", "workload.recompute=none", "parallelism.tp=1", "parallelism.dp=auto")
    assert msg.startswith("cluster.chip: out of memory: the job needs")
    assert "H100-SXM-80GB has 80 GB" in msg and "GB over" in msg
    for part in ("weights", "gradients", "optimizer", "activations", "would fit with", "more tp or pp"):
        assert part in msg


def test_an_estimate_loads_a_job_that_does_not_fit():
    overrides = ["workload.model=llama3-70b", "parallelism.tp=1", "parallelism.dp=auto"]
    assert load_scenario(None, overrides, memory=False).workload.model == "llama3-70b"


def test_fabric_that_cannot_connect_the_cluster_is_refused():
    msgs = problems("cluster.nodes=4096", "cluster.fabric.tiers=2")
    assert any(m.startswith("cluster.fabric.tiers: 2 tiers of 64-port switches") for m in msgs)


def test_override_values_are_validated_like_the_file():
    assert scenario("parallelism.tp=4", "parallelism.dp=16").parallelism.tp == 4
    assert scenario('cluster.chip="A100-SXM-80GB"', "parallelism.dp=auto").cluster.chip == "A100-SXM-80GB"
    [msg] = problems("parallelism.tp=four")
    assert msg.startswith('parallelism.tp: got "four"')


def test_an_override_through_a_key_that_holds_a_value_names_that_key():
    [msg] = problems("parallelism.tp=4", "parallelism.tp.size=4")
    assert msg == "parallelism.tp: is 4, not a table; cannot set parallelism.tp.size"


def test_override_without_equals_sign_is_refused():
    with pytest.raises(ScenarioError, match=r"key\.path=value"):
        load_scenario(None, ["parallelism.tp"])


def test_inline_chip_table_is_accepted_and_checked():
    s = scenario('cluster.chip={bf16_tflops=500, memory_gb=96, hbm_tb_s=4, scale_up="NVLink4"}')
    assert s.cluster.chip_spec.bf16_peak_flops == 500e12
    [msg] = problems("cluster.chip={memory_gb=96, hbm_tb_s=4}")
    assert "bf16_tflops" in msg


def test_model_can_be_given_as_a_shape():
    s = scenario("workload.model=gpt3-175b", "workload.layers=4", "parallelism.dp=auto")
    assert s.workload.model_spec().layers == 4
    assert s.workload.model_name == "gpt3-175b (modified)"


@pytest.mark.parametrize(
    "text,seconds",
    [("90s", 90), ("30m", 1800), ("2h", 7200), ("54d", 54 * 86400), ("1h30m", 5400), (45, 45), ("250ms", 0.25)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)
    assert parse_duration(format_duration(parse_duration(text))) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "seconds,human,short,clock",
    [
        (0.25, "250 ms", "0.0042 min", "0d 00:00:00"),
        (2700, "45.0 min", "45 min", "0d 00:45:00"),
        (6 * 3600, "6.0 h", "6 h", "0d 06:00:00"),
        (1.5 * 86400, "36.0 h", "1.5 d", "1d 12:00:00"),
        (14 * 86400 + 3723, "14.0 d", "14 d", "14d 01:02:03"),
    ],
)
def test_the_three_ways_a_time_is_shown(seconds, human, short, clock):
    """Tables read human_duration, headlines and chart axes short_duration, the sim clock clock_text."""
    assert (human_duration(seconds), short_duration(seconds), clock_text(seconds)) == (human, short, clock)


@pytest.mark.parametrize("bad", ["", "3x", "-5m", "m", True, None])
def test_bad_durations_are_refused(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_save_then_load_gives_the_same_scenario(tmp_path):
    original = load_scenario(SCENARIOS / "kuae-mtt-s4000-10k.toml")
    target = save_scenario(original, tmp_path / "copy.toml")
    assert load_scenario_file(target) == original


def test_failed_save_leaves_the_file_on_disk_untouched(tmp_path, monkeypatch):
    target = tmp_path / "keep.toml"
    save_scenario(scenario(), target)
    before = target.read_bytes()

    def broken_replace(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        save_scenario(scenario("workload.global_batch=512"), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.toml"]


def test_saved_text_is_toml_with_durations_as_strings(starter):
    text = scenario_toml(starter)
    assert 'checkpoint_interval = "30m"' in text and 'duration = "30d"' in text


def test_json_schema_is_exported_from_the_models():
    schema = json_schema()
    json.dumps(schema)
    assert {"cluster", "workload", "parallelism", "features", "reliability", "run"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_catalog_model_sizes_match_their_published_counts():
    # published sizes are rounded to two significant digits ("1.7B" is 1.65B by its shape)
    for name, model in catalog().models.items():
        assert model.total_params() / 1e9 == pytest.approx(model.params_b, rel=0.035), name


def test_every_catalog_entry_names_its_source():
    cat = catalog()
    for group in (cat.chips, cat.links, cat.fabrics, cat.models):
        for name, spec in group.items():
            assert spec.source.strip(), name


def test_validate_scenario_accepts_plain_data():
    s = validate_scenario({"name": "tiny", "cluster": {"nodes": 1}, "parallelism": {"tp": 8}})
    assert s.cluster.total_chips == 8


# ---------------------------------------------------------------- workload shape


GPT3_SHAPE = ("workload.params_b=174.6", "workload.layers=96", "workload.hidden=12288", "workload.heads=96",
              "workload.vocab=51200")  # fmt: skip


def test_a_shape_without_a_model_is_a_custom_model_on_documented_defaults():
    s = custom_scenario(*GPT3_SHAPE)
    m = s.workload.model_spec()
    assert s.workload.model_name == "custom model"
    assert (m.kv_heads or m.heads) == 96 and m.kv_dim == 12288  # multi-head attention
    assert m.ffn == 4 * 12288 and not m.gated_mlp and not m.tied_embeddings
    assert m.total_params() / 1e9 == pytest.approx(174.6, abs=1.0)


def test_a_custom_model_leaves_nothing_to_another_model():
    s = custom_scenario("workload.layers=2", "workload.hidden=256", "workload.heads=4")
    m = s.workload.model_spec()
    assert (m.vocab, m.ffn, m.kv_dim, m.gated_mlp, m.tied_embeddings) == (51200, 1024, 256, False, False)


def test_a_model_with_shape_keys_is_that_model_modified():
    s = scenario("workload.model=llama3-70b", "workload.layers=40", "parallelism.dp=auto", "parallelism.tp=8")
    m = s.workload.model_spec()
    assert (m.layers, m.kv_heads, m.ffn_hidden, m.gated_mlp) == (40, 8, 28672, True)
    assert s.workload.model_name == "llama3-70b (modified)"


def test_no_model_and_no_shape_trains_the_default_model():
    s = validate_scenario({"name": "x"})
    assert s.workload.model is None
    assert s.workload.model_name == "llama3-8b"
    assert s.workload.model_spec() == catalog().models["llama3-8b"]


def test_a_published_size_far_from_the_shapes_count_names_both_and_the_keys():
    with pytest.raises(ScenarioError) as info:
        custom_scenario(*GPT3_SHAPE, "workload.gated_mlp=true", "workload.ffn_hidden=14336")
    [msg] = [str(p) for p in info.value.problems]
    assert msg.startswith("workload.params_b: 174.6 B parameters given, but the shape")
    assert "has 110.0 B; they differ by 37%, more than 5%" in msg
    assert "workload.ffn_hidden = 14336" in msg and "workload.gated_mlp = true" in msg
    assert "the rest from the custom-model defaults" in msg


def test_a_published_size_within_five_percent_is_accepted():
    assert custom_scenario(*GPT3_SHAPE).workload.params_b == 174.6
    with pytest.raises(ScenarioError, match=r"workload\.params_b"):
        scenario("workload.model=llama3-70b", "workload.params_b=80", "parallelism.tp=8", "parallelism.dp=auto")


def test_a_custom_shape_round_trips_through_a_saved_file(tmp_path):
    s = custom_scenario(*GPT3_SHAPE)
    assert load_scenario_file(save_scenario(s, tmp_path / "gpt3.toml")).workload.model_spec() == s.workload.model_spec()


# ---------------------------------------------------------------- pipeline stages


def stage_msgs(*overrides: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario_file(None, ("workload.model=llama3-405b", "parallelism.tp=8", "parallelism.dp=auto",
                                  "cluster.nodes=16", *overrides))  # fmt: skip
    return [str(p) for p in info.value.problems]


def test_first_and_last_stage_layers_spread_the_rest_evenly():
    s = scenario("workload.model=llama3-405b", "parallelism.tp=8", "parallelism.pp=16", "parallelism.dp=auto",
                 "cluster.nodes=16", "parallelism.first_stage_layers=7", "parallelism.last_stage_layers=7")  # fmt: skip
    assert resolve_layout(s).stage_layers == (7,) + (8,) * 14 + (7,)
    even = scenario("workload.model=llama3-405b", "parallelism.tp=8", "parallelism.pp=16", "parallelism.dp=auto",
                    "cluster.nodes=16")  # fmt: skip
    assert resolve_layout(even).stage_layers == (8,) * 14 + (7,) * 2


def test_an_explicit_stage_list_must_match_the_stages_and_the_layers():
    [msg] = stage_msgs("parallelism.pp=2", "parallelism.stage_layers=[60, 60]")
    assert msg == "parallelism.stage_layers: the stages hold 120 layers but the model has 126"
    [msg] = stage_msgs("parallelism.pp=2", "parallelism.stage_layers=[126]")
    assert msg == "parallelism.stage_layers: 1 entries for pp = 2 stages"
    s = scenario("workload.model=llama3-405b", "parallelism.tp=8", "parallelism.pp=2", "parallelism.dp=auto",
                 "cluster.nodes=16", "parallelism.stage_layers=[60, 66]")  # fmt: skip
    assert resolve_layout(s).stage_layers == (60, 66)


def test_uneven_stage_keys_need_a_pipeline_and_a_layer_on_every_stage():
    [msg] = stage_msgs("parallelism.pp=1", "parallelism.first_stage_layers=7")
    assert msg == "parallelism.first_stage_layers: uneven stages need pipeline parallelism (pp > 1)"
    [msg] = stage_msgs("parallelism.pp=4", "parallelism.first_stage_layers=120", "parallelism.last_stage_layers=5")
    assert msg.startswith("parallelism.first_stage_layers: first 120 and last 5 leave (120, 1, 0, 5) layers")
    [msg] = stage_msgs("parallelism.pp=16", "parallelism.first_stage_layers=2", "parallelism.interleave=4",
                       "workload.global_batch=512")  # fmt: skip
    assert msg.startswith("parallelism.interleave: stage 0 holds only 2 layers (2, 9, 9, 9, 9, 8,")


def test_a_written_scenario_keeps_a_long_description_on_its_own_lines():
    from factorysim.scenario import scenario_toml

    s = load_scenario(SCENARIOS / "llama3-70b-1k-h100.toml")
    assert "\n" in s.description
    text = scenario_toml(s)
    assert 'description = """' in text and "\\n" not in text  # readable, not one escaped line
    assert tomllib.loads(text)["description"] == s.description
