"""End-to-end searches at the smoke budget on the embedded photographs (the default data)."""

import json

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

import run_search
from search.verdict.calibration import ProxyRun, PsnrPredictor
from search.runner import run_search as run
from search.settings import SearchSettings
from editions import get_edition

REFERENCES = get_edition(2022).references  # the default edition's

SMOKE = dict(budget="smoke", seed=0, confirm_minutes=0, export_winner=False)


def settings_for(tmp_path, **changes):
    return SearchSettings(results=str(tmp_path / "results"), **{**SMOKE, **changes})


def load(settings):
    return optuna.load_study(study_name=settings.name, storage=settings.storage_url)


def test_runtime_search_writes_reports_plots_and_promotes_its_leader(tmp_path):
    settings = settings_for(tmp_path, track="runtime", trials=7, confirm_minutes=10, max_rung=1, early_stop=False)
    lines = []
    summary = run(settings, say=lines.append)
    run_dir = settings.run_dir
    for name in ("study.db", "trials.csv", "pareto_runtime.csv", "leaderboard_runtime.csv", "pareto_runtime.html",
                 "history_runtime.html", "parallel_runtime.html"):
        assert (run_dir / name).is_file(), name
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 7 and summary.trials == 7
    assert list(trials.loc[:3, "reference"]) == list(REFERENCES)  # the references are the first trials
    study = load(settings)
    calibration = study.user_attrs["calibration"]
    assert [p["name"] for p in calibration["points"]] == ["imdn", "rfdn", "rlfn"] and calibration["floor"] == 29.0
    # Every trained trial carries the stored predictor's prediction, and its constraint reads the interval.
    predictor = PsnrPredictor.from_dict(calibration)
    trained = trials[trials["trained"] & (trials["reference"].isna())]
    for row in trained[trained["rung"] == 0].itertuples():  # a promoted trial is judged at its rung (below)
        prediction = predictor.predict(ProxyRun.from_record(study.trials[row.number].user_attrs))
        assert (row.psnr_predicted, row.psnr_low, row.psnr_high) == pytest.approx(
            (prediction.psnr, prediction.low, prediction.high))
        assert row.verdict == prediction.verdict.value and row.c_psnr == pytest.approx(29.0 - row.psnr_high)
    # Constraints of the runtime track: params and the PSNR floor, nothing about latency.
    assert trials["c_params"].notna().all() and trials["c_latency"].isna().all()
    front = pd.read_csv(run_dir / "pareto_runtime.csv")
    assert front["feasible"].all()
    assert any(line.startswith("[7/7]") for line in lines)
    # The leader climbed to rung 1 (4x the steps, from scratch), judged by a predictor of that rung's references.
    leader = int(pd.read_csv(run_dir / "leaderboard_runtime.csv").query("name == 'trial'")["number"].iloc[0])
    promoted = study.user_attrs[f"rung1:trial{leader}"]
    assert promoted["budget"]["iterations"] == 4 * 12 and len(promoted["psnr_curve"]) == 2 + 1
    rung1 = PsnrPredictor.from_dict(study.user_attrs["rung1:calibration"])
    assert [p["name"] for p in rung1.points] == ["imdn", "rfdn", "rlfn"]
    assert all(study.user_attrs[f"rung1:reference:{n}"]["budget"]["name"] == "smoke@rung1"
               for n in ("imdn", "rfdn", "rlfn"))
    assert promoted["verdict"] == rung1.predict(ProxyRun.from_record(promoted)).verdict.value
    row = trials.set_index("number").loc[leader]
    assert row["rung"] == 1 and row["verdict"] == promoted["verdict"] and row["verdicts"].startswith("r0 ")
    assert any(line.startswith(f"winner: trial #{leader} ") and "rung 1 (48 steps)" in line for line in lines)
    assert summary.winner == leader
    # Optuna's own view: the rung-0 PSNR curve as the trial's intermediate values (optuna-dashboard plots them).
    attrs = study.trials[leader].user_attrs
    assert study.trials[leader].intermediate_values == {step: psnr for step, psnr in attrs["psnr_curve"][1:]}


@pytest.mark.parametrize("track, objectives", [("complexity", 3), ("overall", 6)])
def test_other_tracks_have_their_objectives_and_constraints(tmp_path, track, objectives):
    settings = settings_for(tmp_path, track=track, space="imdn", trials=6)
    run(settings, say=lambda line: None)
    study = load(settings)
    assert len(study.directions) == objectives
    trials = pd.read_csv(settings.run_dir / "trials.csv")
    if track == "complexity":
        complete = trials[trials["state"] == "COMPLETE"]
        assert complete["c_latency"].notna().all() and trials["c_params"].isna().all()
    else:
        assert trials["c_latency"].isna().all() and trials["c_params"].isna().all()
        assert (settings.run_dir / "parallel_overall.html").is_file()
    # References outside the imdn space are measured all the same, without search parameters.
    by_reference = {row.reference: row for row in trials.itertuples() if isinstance(row.reference, str)}
    assert set(by_reference) == set(REFERENCES)
    rlfn_trial = study.trials[int(by_reference["rlfn"].number)]
    assert rlfn_trial.params == {} and rlfn_trial.user_attrs["params"] == 317_218


def test_resume_adds_trials_without_recomputing_the_references(tmp_path):
    first = settings_for(tmp_path, trials=5)
    run(first, say=lambda line: None)
    before = load(first)
    kept = {t.number: (t.values, t.user_attrs.get("psnr")) for t in before.trials}
    records = {name: before.user_attrs[f"reference:{name}"] for name in REFERENCES}

    run(first.replace(trials=7), say=lambda line: None)
    after = load(first)
    done = [t for t in after.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == 7
    for number, (values, psnr) in kept.items():
        assert (after.trials[number].values, after.trials[number].user_attrs.get("psnr")) == (values, psnr)
    assert {name: after.user_attrs[f"reference:{name}"] for name in REFERENCES} == records
    assert sum(1 for t in after.trials if t.user_attrs.get("reference")) == len(REFERENCES)


def test_report_and_export_commands_read_the_stored_study(tmp_path, capsys):
    settings = settings_for(tmp_path, trials=5)
    run(settings, say=lambda line: None)
    results = str(tmp_path / "results")
    assert run_search.main(["report", "--study", settings.name, "--results", results]) == 0
    assert "leaderboard" in capsys.readouterr().out
    out = tmp_path / "exported"
    # Trial 2 is RLFN, a reference: trained in the study like any trial, so it can be exported.
    assert run_search.main(["export", "--study", settings.name, "--results", results, "--trial", "2",
                            "--out", str(out)]) == 0
    metrics = json.loads(next(out.glob("*.metrics.json")).read_text())
    assert metrics["trial"] == 2 and metrics["params"] == 317_218
    assert list((out / "models").glob("trial2_rlfb.py")) and list((out / "model_zoo").glob("trial2_rlfb.pth"))


def test_a_study_begun_before_its_space_grew_resumes_with_the_space_it_began_with():
    from dataclasses import replace

    from search.study import study_space
    from spaces import get_space
    current = get_space("mixed")
    earlier = replace(current, blocks=("imdb", "rfdb", "rlfb", "span"), activations=("lrelu", "relu", "silu", "gelu"))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: earlier.suggest(trial).channels, n_trials=4)
    with pytest.raises(ValueError, match="dynamic value space"):  # what resuming with today's space would do
        current.suggest(study.ask())
    assert study_space(study, SearchSettings()) == earlier
    study.optimize(lambda trial: study_space(study, SearchSettings()).suggest(trial).channels, n_trials=4)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 8
    assert study_space(optuna.create_study(), SearchSettings()) == current  # a new study samples today's space


def test_a_second_study_of_the_same_setting_reads_the_references_rung_runs_from_the_cache(tmp_path):
    first, second = (settings_for(tmp_path, track="runtime", trials=7, confirm_minutes=10, max_rung=1,
                                  early_stop=False, study_name=name) for name in ("first", "second"))
    run(first, say=lambda line: None)
    lines = []
    run(second, say=lines.append)
    rung1 = [line for line in lines if line.lstrip().startswith("reference") and "rung 1" in line]
    assert len(rung1) == 3 and all("(measurement cache)" in line for line in rung1)  # none trained again
    runs = [load(s).user_attrs for s in (first, second)]
    for name in ("imdn", "rfdn", "rlfn"):
        assert runs[0][f"rung1:reference:{name}"]["psnr"] == runs[1][f"rung1:reference:{name}"]["psnr"]


def test_tpe_goes_on_after_pruned_trials_and_only_completed_curves_are_intermediate_values(tmp_path):
    """TPE scores a pruned trial by its intermediate values through `study.direction`, which a multi-objective study
    refuses: written for pruned trials, they failed every trial after TPE's 8 startup trials."""
    settings = settings_for(tmp_path, track="runtime", trials=11)
    run(settings, say=lambda line: None)
    trials = load(settings).trials
    assert not [t.number for t in trials if t.state == TrialState.FAIL]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned and all(t.intermediate_values == {} and t.user_attrs["psnr_curve"] for t in pruned)
    trained = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("trained")]
    assert len(trained) >= 4  # the references, at least
    assert all(t.intermediate_values == {s: p for s, p in t.user_attrs["psnr_curve"][1:]} for t in trained)
