"""The request-body budget (``govgate.core.body_budget``): what one request holds is counted as it grows, a piece
that would pass the limit is refused without changing anything, and a request's release gives all of it back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from govgate.core.body_budget import BodyBudget


def test_growth_is_counted_once_and_a_piece_past_the_limit_is_refused_without_counting() -> None:
    budget = BodyBudget(100)
    assert budget.take("a", 40)
    assert budget.take("a", 60)  # the same body, grown by 20
    assert budget.held == 60
    assert budget.take("b", 40)
    assert budget.held == 100
    assert not budget.take("b", 41)  # one byte past
    assert (budget.held, budget.by_flow) == (100, {"a": 60, "b": 40})
    budget.release("a")
    assert budget.take("b", 41)
    assert budget.held == 41
    budget.release("a")  # twice, or a request that never held anything: nothing
    budget.release("never")
    assert budget.held == 41


@given(st.lists(st.tuples(st.sampled_from("abcd"), st.one_of(st.none(), st.integers(0, 80))), max_size=60))
def test_the_total_is_always_the_sum_of_what_requests_hold_and_never_past_the_limit(
        steps: list[tuple[str, int | None]]) -> None:
    budget = BodyBudget(150)
    for flow_id, size in steps:
        if size is None:
            budget.release(flow_id)
        else:
            before = dict(budget.by_flow)
            fits = sum(before.values()) - before.get(flow_id, 0) + size <= 150 or size <= before.get(flow_id, 0)
            assert budget.take(flow_id, size) is fits
            if not fits:
                assert budget.by_flow == before
        assert budget.held == sum(budget.by_flow.values())
        assert budget.held <= 150
