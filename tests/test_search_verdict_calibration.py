"""The PSNR predictor: ridge on proxy-curve features, leave-one-out intervals, the published map, verdicts."""

import json
import math

import numpy as np
import pytest

from search.verdict.calibration import (CalibrationPoint, Feature, ProxyRun, PsnrPredictor, Verdict, fit_predictor,
                                fit_published_map)


def curve(final, gain=0.3, start=12.0):
    return ((0, start), (75, final - 2 * gain), (113, final - gain), (150, final))


def synthetic_points(n=24, noise=0.02, seed=0):
    """Targets that depend on the final proxy PSNR and the late gain, as a known linear law plus noise."""
    rng = np.random.default_rng(seed)
    points = []
    for i in range(n):
        final, gain, params = rng.uniform(24, 27.5), rng.uniform(0.05, 0.8), int(rng.uniform(1.5e5, 9e5))
        target = 29.0 + 0.08 * (final - 26) + 0.2 * gain + rng.normal(0, noise)
        points.append(CalibrationPoint(f"p{i}", ProxyRun(curve(final, gain), params), target,
                                       published=target - 0.5, source="kit"))
    return points


def test_a_linear_law_is_recovered_with_honest_intervals():
    points = synthetic_points()
    predictor = fit_predictor(points, floor=28.5, features="curve")
    fresh = synthetic_points(n=200, seed=1)
    inside = [p.target for p in fresh]
    predictions = [predictor.predict(p.run) for p in fresh]
    errors = np.abs([pr.on_valid - t for pr, t in zip(predictions, inside)])
    assert np.median(errors) < 0.03  # the law is found (noise 0.02 dB)
    covered = np.mean([pr.on_valid_low <= t <= pr.on_valid_high for pr, t in zip(predictions, inside)])
    assert 0.65 <= covered <= 0.97  # an 80% interval covers about 80% of new points


def test_the_published_map_is_fitted_and_widens_the_interval():
    intercept, slope, sigma = fit_published_map([(29.0, 28.5), (29.2, 28.7), (29.4, 28.9), (29.6, 29.1)])
    assert (intercept, slope, sigma) == pytest.approx((-0.5, 1.0, 0.0), abs=1e-9)
    predictor = fit_predictor(synthetic_points(), floor=28.5, features="curve")
    prediction = predictor.predict(synthetic_points(n=1, seed=5)[0].run)
    assert prediction.psnr == pytest.approx(predictor.map_intercept + predictor.map_slope * prediction.on_valid)
    assert prediction.high - prediction.low >= predictor.map_slope * (prediction.on_valid_high - prediction.on_valid_low) - 1e-9


def test_few_pairs_give_an_offset_map_with_a_default_scatter():
    intercept, slope, sigma = fit_published_map([(29.56, 29.13), (29.48, 29.00)])
    assert slope == 1.0 and intercept == pytest.approx(np.mean([29.13 - 29.56, 29.00 - 29.48]))
    assert sigma > 0


def test_verdicts_follow_the_interval_and_the_floor():
    points = synthetic_points()
    for floor, expected in ((27.0, Verdict.FEASIBLE), (31.0, Verdict.INFEASIBLE)):
        predictor = fit_predictor(points, floor=floor, features="curve")
        assert predictor.predict(points[0].run).verdict is expected
    predictor = fit_predictor(points, floor=28.5, features="curve")
    prediction = predictor.predict(points[0].run)
    straddling = fit_predictor(points, floor=prediction.psnr, features="curve").predict(points[0].run)
    assert straddling.verdict is Verdict.UNCERTAIN and straddling.low < straddling.psnr < straddling.high


def test_an_architecture_unlike_the_calibration_points_gets_a_wider_interval():
    predictor = fit_predictor(synthetic_points(), floor=28.5, features="curve")
    typical = predictor.predict(ProxyRun(curve(26.0, 0.4), 400_000))
    odd = predictor.predict(ProxyRun(curve(18.0, 3.0, start=27.9), 400_000))
    assert odd.on_valid_high - odd.on_valid_low > 2 * (typical.on_valid_high - typical.on_valid_low)


def test_few_points_fall_back_to_the_proxy_psnr_alone():
    predictor = fit_predictor(synthetic_points(n=5), floor=28.5, features="curve+size")
    assert predictor.features == ("final",)


def test_the_predictor_round_trips_through_json():
    predictor = fit_predictor(synthetic_points(), floor=28.5)
    again = PsnrPredictor.from_dict(json.loads(json.dumps(predictor.to_dict())))
    run = ProxyRun(curve(25.5), 300_000)
    assert again == predictor and again.predict(run) == predictor.predict(run)


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="at least two"):
        fit_predictor(synthetic_points(n=1), floor=29.0)
    with pytest.raises(ValueError, match="unknown feature set"):
        fit_predictor(synthetic_points(), floor=29.0, features="tea-leaves")


def test_features_are_read_from_a_trial_record():
    run = ProxyRun.from_record({"psnr_curve": [[0, 11.0], [75, 24.0], [150, 25.0]], "params": 1000})
    assert run.feature(Feature.FINAL) == 25.0 and run.feature(Feature.START) == 11.0
    assert run.feature(Feature.LATE_GAIN) == 1.0 and math.isclose(run.feature(Feature.LOG_PARAMS), 3.0)


def test_activations_are_a_feature_and_their_absence_is_named():
    rng = np.random.default_rng(3)
    points, fresh = [], []
    for i in range(60):
        final, params, acts = rng.uniform(26.5, 27.5), int(rng.uniform(1.5e5, 9e5)), rng.uniform(40, 200)
        target = 29.3 + 0.3 * math.log10(acts / 100) + 0.05 * (final - 27) + rng.normal(0, 0.01)
        point = CalibrationPoint(f"p{i}", ProxyRun(curve(final), params, acts), target)
        (points if i < 24 else fresh).append(point)
    with_acts = fit_predictor(points, floor=29.0, features="proxy+size+acts")
    without = fit_predictor(points, floor=29.0, features="proxy+size")
    assert with_acts.features == ("final", "log_params", "log_activations")
    error = {name: np.mean([abs(p.predict(f.run).on_valid - f.target) for f in fresh])
             for name, p in (("with", with_acts), ("without", without))}
    assert error["with"] < 0.03 < error["without"]
    record = {"psnr_curve": [list(c) for c in curve(27.0)], "params": 300_000, "activations_m": 80.5}
    assert ProxyRun.from_record(record).feature(Feature.LOG_ACTIVATIONS) == pytest.approx(math.log10(80.5))
    with pytest.raises(ValueError, match="no activation count"):
        with_acts.predict(ProxyRun(curve(27.0), 300_000))


# The smoke-budget study of the issue: three references calibrate (proxy PSNR at 12 steps, params, what their
# official weights reach on the embedded photographs, published figure).
SMOKE_REFERENCES = [("imdn", 18.99, 893_936, 29.56, 29.13), ("rfdn", 17.61, 433_448, 29.54, 29.04),
                    ("rlfn", 18.49, 317_218, 29.48, 29.00)]


def smoke_predictor():
    points = [CalibrationPoint(name, ProxyRun(((0, 12.0), (12, final)), params), target, published=published)
              for name, final, params, target, published in SMOKE_REFERENCES]
    return fit_predictor(points, floor=29.0, features="proxy+size")


@pytest.mark.parametrize("name, final, params", [("span", 10.05, 150_688), ("one conv", 8.6, 1_344)])
def test_a_run_beyond_the_calibration_points_is_outside_never_feasible(name, final, params):
    prediction = smoke_predictor().predict(ProxyRun(((0, 12.0), (12, final)), params))
    assert prediction.verdict is Verdict.OUTSIDE and "final" in prediction.outside
    assert prediction.to_record()["verdict"] == "outside calibration"


def test_too_few_points_say_so_and_decide_nothing():
    predictor = smoke_predictor()
    assert predictor.features == ("final",) and "too few for proxy+size" in predictor.too_few
    assert "too few" in predictor.describe()
    inside = predictor.predict(ProxyRun(((0, 12.0), (12, 18.3)), 400_000))
    assert inside.outside == () and inside.verdict is Verdict.UNCERTAIN
    assert PsnrPredictor.from_dict(json.loads(json.dumps(predictor.to_dict()))) == predictor


def test_the_span_is_widened_by_its_margin_and_guards_every_requested_feature():
    points = synthetic_points()
    predictor = fit_predictor(points, floor=27.0, features="proxy+size")
    finals = np.array([p.run.feature(Feature.FINAL) for p in points])
    low, high = predictor.span["final"]
    assert low == pytest.approx(finals.min() - 0.5 * finals.std()) and high == pytest.approx(finals.max() + 0.5 * finals.std())
    assert predictor.predict(points[0].run).verdict is Verdict.FEASIBLE  # inside: decided as before
    just_inside = ProxyRun(curve(high - 1e-6), 400_000)
    assert predictor.predict(just_inside).outside == ()
    far = predictor.predict(ProxyRun(curve(high + 0.01), 400_000))
    assert far.outside == ("final",) and far.verdict is Verdict.OUTSIDE  # predicted high, yet not feasible
    tiny = predictor.predict(ProxyRun(curve(26.0), 2_000))
    assert tiny.outside == ("log_params",)


def test_a_predictor_stored_before_the_span_was_kept_reads_back_unguarded():
    stored = fit_predictor(synthetic_points(), floor=28.5, features="curve").to_dict()
    del stored["span"], stored["too_few"]
    old = PsnrPredictor.from_dict(stored)
    assert old.span == {} and old.too_few == "" and old.outside(ProxyRun(curve(40.0), 1)) == ()
