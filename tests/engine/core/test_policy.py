"""The loop policy as plain functions: injections, stop decisions, runaway guard."""

from hypothesis import given, settings, strategies as st

from autoresearch_tui.engine.core import policy
from autoresearch_tui.engine.core.policy import LedgerView, LoopSettings, PolicyState, StopContext

SETTINGS = LoopSettings(reinject_every_turns=3, reinject_every_minutes=10, retrospective_every_stops=3,
                        plateau_runs=4, max_consecutive_blocks=5)


def test_injection_due_every_n_turns():
    state = PolicyState(last_injection_at=1000.0)
    for _ in range(2):
        policy.note_assistant_turn(state)
        assert policy.injection_due(state, SETTINGS, now=1001.0) is None
    policy.note_assistant_turn(state)
    assert "3 assistant turns" in policy.injection_due(state, SETTINGS, now=1001.0)
    policy.mark_injected(state, now=1001.0)
    assert policy.injection_due(state, SETTINGS, now=1002.0) is None
    assert state.injections == 1


def test_injection_due_after_minutes_and_after_compaction():
    state = PolicyState(last_injection_at=1000.0)
    assert policy.injection_due(state, SETTINGS, now=1000 + 599) is None
    assert "minutes" in policy.injection_due(state, SETTINGS, now=1000 + 600)
    policy.mark_injected(state, now=1600)
    policy.note_compaction(state)
    assert policy.injection_due(state, SETTINGS, now=1601) == "context was compacted"


def test_stop_blocked_with_continue_then_retrospective_on_kth_stop():
    state = PolicyState()
    kinds = []
    for _ in range(6):
        decision = policy.decide_stop(state, SETTINGS, StopContext())
        policy.note_tool_use(state)
        kinds.append(decision.kind)
        assert decision.blocks
    assert kinds == ["continue", "continue", "retrospective"] * 2
    assert state.stops_blocked == 6 and state.retrospectives == 2


def test_give_up_and_permission_phrases_trigger_retrospective():
    for text in ["I have exhausted all ideas for now.", "Should I continue with more experiments?",
                 "Let me know if you want more.", "I'm out of ideas.", "Would you like me to try bf16?"]:
        decision = policy.decide_stop(PolicyState(), SETTINGS, StopContext(last_assistant_message=text))
        assert decision.kind == "retrospective", text
        assert "gave up" in decision.reason


def test_ordinary_progress_message_is_not_a_give_up():
    assert policy.detect_give_up("Jitted the step: 41 ms -> 12 ms. Next I will try bf16.") is None


def test_runaway_guard_allows_and_asks_for_attention():
    state = PolicyState()
    decisions = [policy.decide_stop(state, SETTINGS, StopContext()) for _ in range(6)]
    assert all(d.blocks for d in decisions[:5])
    assert decisions[5].action == "allow" and decisions[5].needs_attention
    assert decisions[5].kind == "runaway"


def test_tool_use_resets_runaway_guard():
    state = PolicyState()
    for _ in range(20):
        assert policy.decide_stop(state, SETTINGS, StopContext()).blocks
        policy.note_tool_use(state)


def test_pausing_stopping_budget_and_authorized_allow():
    for ctx, kind in [(StopContext(lane_state="pausing"), "paused"),
                      (StopContext(lane_state="stopping"), "stopping"),
                      (StopContext(budget_spent=True), "budget"),
                      (StopContext(stop_authorized=True), "authorized")]:
        decision = policy.decide_stop(PolicyState(), SETTINGS, ctx)
        assert (decision.action, decision.kind) == ("allow", kind)


def test_plateau_makes_the_next_stop_a_retrospective_once_per_episode():
    state = PolicyState()
    plateau = StopContext(ledger=LedgerView(total_runs=10, runs_since_best=4))
    first = policy.decide_stop(state, SETTINGS, plateau)
    assert first.kind == "retrospective" and "plateau" in first.reason
    policy.note_tool_use(state)
    again = policy.decide_stop(state, SETTINGS, plateau)
    assert again.kind == "continue"
    policy.note_tool_use(state)
    later = StopContext(ledger=LedgerView(total_runs=14, runs_since_best=8))
    assert "plateau" in policy.decide_stop(state, SETTINGS, later).reason


def test_user_requested_retrospective_wins():
    state = PolicyState(retrospective_requested=True)
    decision = policy.decide_stop(state, SETTINGS, StopContext())
    assert decision.kind == "retrospective" and not state.retrospective_requested


def test_state_round_trips_and_ignores_unknown_keys():
    state = PolicyState(stops=4, injections=2)
    assert PolicyState.from_dict({**state.to_dict(), "future_field": 1}) == state


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.sampled_from(["stop", "tool", "turn", "give_up"]), max_size=60),
    max_blocks=st.integers(1, 6),
)
def test_never_more_than_max_consecutive_blocks_without_tool_use(steps, max_blocks):
    settings_ = LoopSettings(max_consecutive_blocks=max_blocks, retrospective_every_stops=2)
    state = PolicyState()
    run_of_blocks = 0
    for step in steps:
        if step == "tool":
            policy.note_tool_use(state)
            run_of_blocks = 0
        elif step == "turn":
            policy.note_assistant_turn(state)
        else:
            message = "I have exhausted all ideas" if step == "give_up" else "done"
            decision = policy.decide_stop(state, settings_, StopContext(last_assistant_message=message))
            run_of_blocks = run_of_blocks + 1 if decision.blocks else 0
            assert run_of_blocks <= max_blocks
            if not decision.blocks:
                assert decision.needs_attention


@given(st.text(max_size=400))
def test_detect_give_up_never_raises(text):
    result = policy.detect_give_up(text)
    assert result is None or result in " ".join(text.lower().split())
