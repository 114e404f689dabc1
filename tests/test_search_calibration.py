import json

import pytest

from search.calibration import CALIBRATED, IMDN_MARGIN, PsnrFloor, fit_psnr_floor

# The design's measurement: 200 proxy steps on 2 CPU cores against the published full-training PSNRs.
POINTS = {"imdn": (23.21, 29.13), "rfdn": (22.67, 29.04), "rlfn": (22.41, 29.00)}


def test_calibrated_map_passes_through_monotone_references():
    floor = fit_psnr_floor(points=POINTS)
    for proxy, published in POINTS.values():
        assert floor.predict(proxy) == pytest.approx(published)
    assert floor.proxy_floor == pytest.approx(22.41)  # RLFN met the real floor, so it meets this one
    assert floor.violation(22.41) == pytest.approx(0.0)
    assert floor.violation(22.2) > 0 > floor.violation(22.9)
    assert not floor.degenerate


def test_extrapolation_is_monotone_and_uses_the_least_squares_slope():
    floor = fit_psnr_floor(points=POINTS)
    assert 0.1 < floor.slope < 0.2  # full-training gaps are ~6x smaller than the proxy's
    assert floor.predict(24.21) == pytest.approx(29.13 + floor.slope)
    assert floor.predict(21.41) == pytest.approx(29.00 - floor.slope)
    values = [floor.predict(x / 10) for x in range(200, 250)]
    assert values == sorted(values)


def test_literal_rule_would_reject_rlfn_but_the_calibrated_floor_does_not():
    literal = fit_psnr_floor(points=POINTS, mode=IMDN_MARGIN, margin=0.13)
    assert literal.proxy_floor == pytest.approx(23.08)
    assert literal.violation(22.41) > 0
    assert fit_psnr_floor(points=POINTS, mode=CALIBRATED).violation(22.41) <= 0


def test_references_out_of_order_are_pooled_and_flagged():
    swapped = dict(POINTS, rfdn=(22.30, 29.04))  # the proxy ranks RFDN under RLFN
    floor = fit_psnr_floor(points=swapped)
    assert floor.degenerate
    assert len(floor.knots_x) == 2
    assert floor.knots_y[0] == pytest.approx((29.04 + 29.00) / 2)
    assert floor.predict(22.0) <= floor.predict(22.5) <= floor.predict(23.0)


def test_round_trip_through_json():
    floor = fit_psnr_floor(points=POINTS, floor=28.9)
    assert PsnrFloor.from_dict(json.loads(json.dumps(floor.to_dict()))) == floor


def test_bad_modes_and_points_are_rejected():
    with pytest.raises(ValueError, match="unknown PSNR floor mode 'loose'"):
        fit_psnr_floor(points=POINTS, mode="loose")
    with pytest.raises(ValueError, match="at least two reference points"):
        fit_psnr_floor(points={"imdn": (23.2, 29.13)})
