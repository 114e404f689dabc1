"""The promotion ladder as plain data: budgets per rung, the share that moves up, its table."""

import pytest

from search.verdict.rungs import Ladder
from train_proxy import get_budget


def test_rung_k_trains_reduction_factor_to_the_k_times_the_steps_with_the_same_recipe():
    quick = get_budget("quick")
    ladder = Ladder(quick, reduction_factor=4, max_rung=2)
    assert ladder.budget(0) == quick
    assert [ladder.budget(k).iterations for k in ladder.rungs] == [150, 600, 2400]
    for k in (1, 2):
        rung = ladder.budget(k)
        assert rung.name == f"quick@rung{k}"
        assert (rung.batch_size, rung.lr_patch, rung.lr, rung.schedule, rung.checkpoints) == (
            quick.batch_size, quick.lr_patch, quick.lr, quick.schedule, quick.checkpoints)
    with pytest.raises(ValueError, match="rung 3 is not on this ladder"):
        ladder.budget(3)


def test_the_top_one_over_eta_of_a_rung_moves_up_one_at_least():
    ladder = Ladder(get_budget("smoke"), reduction_factor=3)
    assert [ladder.promoted(n) for n in (0, 1, 2, 3, 8, 9, 20)] == [0, 1, 1, 1, 2, 3, 6]


@pytest.mark.parametrize("changes, message", [({"reduction_factor": 1}, "--reduction-factor"),
                                              ({"reduction_factor": 2.5}, "--reduction-factor"),
                                              ({"max_rung": -1}, "--max-rung")])
def test_a_ladder_that_cannot_climb_is_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        Ladder(get_budget("smoke"), **changes)


def test_the_ladder_prints_as_a_table():
    table = Ladder(get_budget("quick"), max_rung=2).table(reached={0: 20, 1: 2})
    lines = table.splitlines()
    assert lines[0].split() == ["rung", "steps", "budget", "x", "rung", "0", "reached"]
    assert lines[1].split() == ["0", "150", "quick", "1", "20"]
    assert lines[2].split() == ["1", "600", "quick@rung1", "4", "2"]
    assert lines[3].split() == ["2", "2400", "quick@rung2", "16", "-"]
