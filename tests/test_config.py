"""Config loading: the shipped file is valid; every kind of mistake gets one message naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bci_app.config import (
    DEFAULT_CONFIG_PATH,
    AppConfig,
    ConfigError,
    DspConfig,
    FiltersConfig,
    load_config,
    parse_config,
)


def test_shipped_config_is_valid_and_uses_the_simulator():
    config = load_config(DEFAULT_CONFIG_PATH)
    assert isinstance(config, AppConfig)
    assert config.stream.uses_simulator
    assert config.windows.hop <= config.windows.length


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"filters": {"bandpas": [1, 30]}},
            "filters.bandpas: unknown key; allowed keys here: bandpass",
        ),
        ({"strem": {}}, "strem: unknown key"),
        ({"filters": {"order": "4"}}, "filters.order: Input should be a valid integer"),
        ({"ring": {"capacity": True}}, "ring.capacity: Input should be a valid number"),
        (
            {"channels": {"reference": "average"}},
            "channels.reference: Input should be 'none' or 'car'",
        ),
        ({"filters": {"notch": 55}}, "filters.notch: Input should be 50 or 60"),
        (
            {"filters": {"bandpass": [1.0, 90.0]}},
            "above the Nyquist frequency 80.0 Hz of model_rate 160.0",
        ),
        (
            {"filters": {"bandpass": [30.0, 8.0]}},
            "filters.bandpass: low edge 30.0 Hz must be below the high edge 8.0 Hz",
        ),
        ({"filters": {"bandpass": [None, None]}}, "filters.bandpass: give at least one edge"),
        ({"filters": {"bandpass": [1.0]}}, "filters.bandpass: List should have at least 2 items"),
        (
            {"windows": {"length": 1.0, "hop": 2.0}},
            "hop 2.0 s is longer than the window length 1.0 s",
        ),
        ({"windows": {"hop": 0}}, "windows.hop: Input should be greater than 0"),
        (
            {"model_rate": 100, "filters": {"bandpass": [1, 30], "notch": 50}},
            "set filters.notch: null",
        ),
        ({"simulator": {"channels": 32}}, "simulator.channels: Input should be 8, 64 or 256"),
        ({"health": {"stale_after": 5.0}}, "need stale_after < recover_after < lost_after"),
        ({"model": {"device": "gpu"}}, "model.device: Input should be 'auto', 'cuda' or 'cpu'"),
        (
            {"scheduling": {"realtime_priority": 0}},
            "scheduling.realtime_priority: Input should be greater than or equal to 1",
        ),
        ({"scheduling": {"realtime_priority": "high"}}, "scheduling.realtime_priority"),
        ({"stream": {"resolve_timeout": float("nan")}}, "stream.resolve_timeout"),
    ],
)
def test_invalid_values_name_the_field_and_what_is_allowed(data, expected):
    with pytest.raises(ConfigError) as error:
        parse_config(data, "test.yaml")
    message = str(error.value)
    assert "test.yaml" in message
    assert expected in message


def test_one_problem_reads_source_field_message_and_value():
    with pytest.raises(ConfigError) as error:
        parse_config({"filters": {"notch": 55}}, "test.yaml")
    assert str(error.value) == (
        "invalid configuration in test.yaml: filters.notch: Input should be 50 or 60 (got 55)"
    )


def test_all_problems_reported_at_once():
    with pytest.raises(ConfigError, match="2 problems") as error:
        parse_config({"filters": {"order": 0}, "gui": {"refresh": 30}})
    assert "filters.order" in str(error.value)
    assert "gui.refresh: unknown key" in str(error.value)


def test_yaml_errors_and_missing_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist; pass an existing file"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("filters: [1, 2\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listed)


def test_yaml_is_loaded_safely(tmp_path: Path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("stream: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(evil)


def test_partial_file_keeps_documented_defaults(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("stream:\n  source_id: amp-123\nfilters:\n  bandpass: [8, 30]\n  notch: null\n")
    config = load_config(path)
    assert config.stream.source_id == "amp-123"
    assert not config.stream.uses_simulator
    assert config.filters.bandpass == [8.0, 30.0]
    assert config.filters.notch is None
    assert config.windows == AppConfig().windows


def test_dsp_settings_are_the_filters_section_plus_the_reference():
    config = parse_config(
        {
            "filters": {"bandpass": [8, 30], "notch": 60, "order": 2},
            "channels": {"reference": "car"},
        }
    )
    dsp = DspConfig.from_config(config)
    assert dsp.model_dump() == {
        "bandpass": [8.0, 30.0],
        "order": 2,
        "notch": 60,
        "notch_quality": 30.0,
        "resampler_phase": "minimum",
        "reference": "car",
    }
    assert set(DspConfig.model_fields) == {*FiltersConfig.model_fields, "reference"}
    applied = dsp.apply_to(AppConfig(channels={"pick": ["C3", "C4"]}))
    assert type(applied.filters) is FiltersConfig
    assert applied.filters == config.filters
    assert applied.channels.reference == "car" and applied.channels.pick == ["C3", "C4"]
    assert DspConfig.from_config(applied) == dsp


def test_dsp_settings_keep_the_config_limits():
    base = DspConfig.from_config(AppConfig()).model_dump()
    for key, value in (("notch", 55), ("reference", "banana"), ("order", 9), ("bandpass", [9, 8])):
        with pytest.raises(ValueError, match=key):
            DspConfig(**{**base, key: value})


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path: Path):
    path = tmp_path / "twice.yaml"
    path.write_text("filters:\n  notch: 50\n  order: 4\n  notch: 60\n")
    with pytest.raises(ConfigError, match=r"key 'notch' is given twice \(lines 2 and 4\)"):
        load_config(path)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"budgets": {"total_ms": float("inf")}}, r"budgets.total_ms: .*finite number"),
        ({"budgets": {"staleness_ms": float("nan")}}, r"budgets.staleness_ms: .*finite number"),
        ({"health": {"gap_tolerance": float("inf")}}, r"health.gap_tolerance: .*finite"),
    ],
)
def test_non_finite_numbers_are_refused(data, expected):
    with pytest.raises(ConfigError, match=expected):
        parse_config(data)


def test_a_window_longer_than_the_ring_is_refused_at_load():
    with pytest.raises(ConfigError, match=r"ring.capacity 1 s is shorter than windows.length 2 s"):
        parse_config({"ring": {"capacity": 1.0}})
    assert parse_config({"ring": {"capacity": 2.0}}).ring.capacity == 2.0
