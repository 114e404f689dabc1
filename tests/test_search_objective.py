"""The objective's predictor: what it is fitted on."""

from types import SimpleNamespace

from editions import get_edition
from search.objective import TrialObjective
from search.settings import SearchSettings
from search.verdict import known_quality
from search.verdict.calibration import CalibrationPoint, ProxyRun


def test_a_known_point_of_a_reference_network_is_not_counted_beside_the_reference():
    shipped = known_quality.shipped()
    rung1 = next(entry for entry in shipped["settings"] if entry["rung"] == 1)
    points = [CalibrationPoint(name=p["name"], run=ProxyRun(tuple(map(tuple, p["curve"])), p["params"],
                                                            p["activations_m"]),
                               target=p["target"], published=p["published"], source="shipped kit")
              for p in rung1["points"]]
    records = {name: rung1["reference_runs"][name] for name in ("imdn", "rfdn", "rlfn")}
    objective = SimpleNamespace(edition=get_edition(2022), settings=SearchSettings(budget="smoke"), known_points=[],
                                data=SimpleNamespace(to_dict=lambda: {"valid_names": shipped["valid"]}, valid=[]))

    predictor = TrialObjective.fit(objective, records, points=points)

    names = [row["name"] for row in predictor.points]
    assert {"imdn", "rfdn", "rlfn"} <= set(names)  # the study's own runs
    assert not {"2022:-1", "2022:0", "2022:4"} & set(names)  # the kit's files of the same three networks
    assert len(names) == len(points) - 3 + 3 and "2022:1" in names  # EFDN is no reference of 2022: kept
