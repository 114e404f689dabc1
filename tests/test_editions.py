"""The challenge's editions as data: each edition's baseline, floor, counter, ranking and published figures."""

import math
from pathlib import Path

import pandas as pd
import pytest

from editions import EDITIONS, Constraint, RankSum, ValidationSet, WeightedScore, get_edition
from evaluators import count_params
from evaluators.counter import Counter
from search.constraints import Limits, constraint_values, parse_constraint, violated_before_training
from search.settings import SearchSettings
from search.tracks import get_track
from spaces import build_model, get_reference, inference_form

KITS = Path(__file__).resolve().parents[1].parent / "shared" / "ntire-kits"
needs_kits = pytest.mark.skipif(not KITS.is_dir(), reason=f"the challenge kits are not at {KITS}")


def test_every_edition_from_2022_is_registered_and_2022_is_the_default():
    assert set(EDITIONS) == {2022, 2023, 2024, 2025, 2026}
    assert SearchSettings().edition == 2022 and SearchSettings().floor == 29.00
    with pytest.raises(ValueError, match="unknown edition 2021; known: 2022"):
        get_edition(2021)


@pytest.mark.parametrize("year, baseline, params", [(2022, "imdn", 893_936), (2023, "rfdn", 433_448),
                                                     (2024, "rlfn_prune", 317_218), (2025, "efdn", 276_192),
                                                     (2026, "span", 150_688)])
def test_each_baseline_is_a_point_of_the_space_with_its_exact_parameter_count(year, baseline, params):
    edition = get_edition(year)
    assert edition.baseline == baseline and edition.references[0] == baseline
    assert count_params(inference_form(build_model(get_reference(baseline)))) == params
    assert round(params / 1e6, 3) == edition.baseline_figures.params_m


@pytest.mark.parametrize("year, floor, test_floor, validation, counter", [
    (2022, 29.00, None, ValidationSet.DIV2K, Counter.NTIRE2022),
    (2023, 29.00, None, ValidationSet.DIV2K, Counter.NTIRE2022),
    (2024, 26.90, 26.99, ValidationSet.DIV2K_LSDIR, Counter.FVCORE),
    (2025, 26.90, 26.99, ValidationSet.DIV2K_LSDIR, Counter.FVCORE),
    (2026, 26.90, 26.99, ValidationSet.DIV2K_LSDIR, Counter.FVCORE)])
def test_floors_layouts_and_counters(year, floor, test_floor, validation, counter):
    edition = get_edition(year)
    assert (edition.floor.valid, edition.floor.test) == (floor, test_floor)
    assert edition.validation is validation and edition.counter is counter
    assert SearchSettings(edition=year).floor == floor  # the search's default floor is the edition's


def test_rankings_2022_rank_rules_2024_weighted_2026_reweighted():
    assert isinstance(get_edition(2022).ranking, RankSum)
    assert dict(get_edition(2024).ranking.weights) == {"latency_ratio": 0.7, "flops_g": 0.15, "params": 0.15}
    assert dict(get_edition(2025).ranking.weights) == {"latency_ratio": 0.7, "flops_g": 0.15, "params": 0.15}
    assert dict(get_edition(2026).ranking.weights) == {"latency_ratio": 0.8, "flops_g": 0.1, "params": 0.1}
    with pytest.raises(ValueError, match="sum to 1"):
        WeightedScore((("latency_ratio", 0.7), ("params", 0.15)))


def test_weighted_score_is_exp_of_twice_the_ratio_to_the_baseline():
    score = get_edition(2024).ranking.score
    board = pd.DataFrame({"latency_ratio": [1.0, 0.5], "flops_g": [19.67, 19.67 / 2], "params": [317_218, 158_609]})
    values = score(board, ranked_by=("latency_ratio",), baseline={"flops_g": 19.67, "params": 317_218})
    assert list(values) == pytest.approx([math.exp(2), math.exp(1)])


def test_gpus_as_published():
    assert [get_edition(y).gpu for y in (2022, 2024, 2025, 2026)] == [
        "NVIDIA Titan Xp", "NVIDIA GeForce RTX 3090", "NVIDIA RTX A6000", "NVIDIA RTX A6000"]


def test_calibration_uses_the_editions_references_and_their_published_psnr():
    assert {n: get_edition(2022).published_psnr(n) for n in get_edition(2022).calibration_references} == {
        "imdn": 29.13, "rfdn": 29.04, "rlfn": 29.00}
    # 2026 reads RLFN_Prune's figure from 2024: the same DIV2K_LSDIR validation images.
    assert get_edition(2026).published_psnr("rlfn_prune") == 26.96
    assert get_edition(2022).published_psnr("span") is None  # published on another validation set
    assert get_edition(2024).published("rlfn_prune").runtime_ms == 13.54
    # EFDN's 2022 figure (29.00 on DIV2K valid) is not on the 2025 validation scale; its 2025 one is.
    assert get_edition(2025).published_psnr("efdn") == 26.93 and get_edition(2022).published_psnr("efdn") == 29.00
    assert get_edition(2025).published("efdn").runtime_ms == 16.69


def test_runtime_track_from_2024_keeps_the_baselines_flops_too():
    assert get_track("runtime", get_edition(2022)).constraints == (Constraint.PARAMS, Constraint.PSNR)
    track = get_track("runtime", get_edition(2024))
    limits = Limits(params=317_218, flops_g=19.67, floor=26.90)
    record = {"params": 300_000, "flops_g": 21.0, "latency_ratio": 0.5, "psnr_predicted": 27.0, "psnr_high": 27.1}
    assert violated_before_training(track.constraints, record, limits=limits) == ["flops"]
    values = constraint_values(track.constraints, record, limits=limits)
    assert values["params"] == -17_218 and values["flops"] == pytest.approx(1.33) and values["psnr"] == pytest.approx(-0.2)  # floor - psnr_high


def test_unknown_constraint_names_are_an_error():
    with pytest.raises(ValueError, match="unknown constraint 'memory'"):
        parse_constraint("memory")


@pytest.mark.parametrize("name, flops_g", [("rlfn", 19.67), ("efdn", 16.70), ("span", 9.83)])
def test_fvcore_counter_reproduces_the_published_flops(name, flops_g):
    from evaluators.counter import count_complexity
    report = count_complexity(inference_form(build_model(get_reference(name))), counter=Counter.FVCORE)
    assert round(report.flops_g, 2) == flops_g


@needs_kits
def test_fvcore_counter_on_the_2024_kits_baseline_gives_its_published_flops():
    from evaluators.counter import count_complexity
    from spaces import get_entry
    entry = get_entry(KITS, "2024:0")
    report = count_complexity(build_model(entry.model), counter=Counter.FVCORE)
    assert round(report.flops_g, 2) == entry.published["flops_g"] == 19.67
    assert report.params == 317_218 and round(report.activations_m, 2) == entry.published["activations_m"]


def test_profile_shows_the_editions_baseline_and_published_figures(capsys):
    from run_search import main
    assert main(["profile", "--edition", "2024", "rlfn_prune", "--repeats", "5", "--input", "3x16x16"]) == 0
    out = capsys.readouterr().out
    assert "NTIRE 2024: baseline rlfn_prune, FLOPs by fvcore" in out
    assert "19.67" in out and "317,218" in out
    assert "rlfn_prune (baseline): params 0.317 M, FLOPs 19.67 G, runtime 13.54 ms, PSNR 26.96 / 27.07 dB" in out


def test_profile_shows_the_baseline_figures_even_when_the_baseline_is_not_profiled(capsys):
    from run_search import main
    assert main(["profile", "--edition", "2024", "rlfn", "--repeats", "5", "--input", "3x16x16"]) == 0
    out = capsys.readouterr().out
    assert "rlfn_prune (baseline): params 0.317 M, FLOPs 19.67 G, runtime 13.54 ms, PSNR 26.96 / 27.07 dB" in out
    assert main(["profile", "--edition", "2025", "span", "--repeats", "5", "--input", "3x16x16"]) == 0
    out = capsys.readouterr().out
    assert "efdn (baseline): params 0.276 M, FLOPs 16.70 G, runtime 16.69 ms, PSNR 26.93 / 27.01 dB" in out


def test_unknown_edition_on_the_command_line_is_one_error_line(capsys):
    from run_search import main
    assert main(["profile", "--edition", "1999", "imdn"]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown edition '1999'; known: " + ", ".join(map(str, EDITIONS))


@needs_kits
def test_fvcore_counter_on_the_2025_baselines_kit_module_gives_its_published_flops():
    from evaluators.counter import count_complexity
    from spaces import get_entry
    official = count_complexity(build_model(get_entry(KITS, "2022:1").model), counter=Counter.FVCORE)
    ours = count_complexity(inference_form(build_model(get_reference("efdn"))), counter=Counter.FVCORE)
    assert round(official.flops_g, 2) == round(ours.flops_g, 2) == get_edition(2025).baseline_figures.flops_g == 16.70
    assert official.params == ours.params == 276_192
    # The 2022 counter, as the 2022 kit published EFDN: 16.73 G, 111.12 M activations, 65 convs.
    official, ours = (count_complexity(model, counter=Counter.NTIRE2022) for model in (
        build_model(get_entry(KITS, "2022:1").model), inference_form(build_model(get_reference("efdn")))))
    assert official == ours and round(ours.flops_g, 2) == 16.73 and ours.convs == 65
