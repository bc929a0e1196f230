"""The teams' pure routing rules: what one message does to the state."""

from __future__ import annotations

from branchpoint.agents.teams import (
    MAGENTIC,
    MATH,
    MAX_REJECTIONS,
    STALL_LIMIT,
    parse_progress_ledger,
    speaker_named,
)


def test_math_team_routes_plan_solve_verify() -> None:
    assert MATH.advance({}, "Planner", "1. add\n2. subtract").sets_plan
    assert MATH.advance({}, "Solver", "Item 1: 2+3 = 5\nCONTINUE").next == "Solver"
    assert MATH.advance({}, "Solver", "Item 2: 5-1 = 4").next == "Verifier"
    back = MATH.advance({}, "Verifier", "REJECT: item 2 uses the wrong value")
    assert (back.kind, back.next, back.done, back.stall) == ("message", "Solver", False, 1)
    last = MATH.advance({"stall": MAX_REJECTIONS - 1}, "Verifier", "REJECT: still wrong")
    assert last.done and last.final_answer is None  # no endless reject/retry loop
    final = MATH.advance({}, "Verifier", "All good. FINAL ANSWER: 1,200")
    assert (final.kind, final.done, final.final_answer) == ("final", True, "1200")


def test_magentic_orchestrator_plans_first_and_replans_when_stalled() -> None:
    assert (
        MAGENTIC.advance({}, "Orchestrator", "FACTS: …\nPLAN: 1. Coder writes code").kind == "plan"
    )
    stalled = {"plan_id": "m1", "stall": STALL_LIMIT}
    assert (
        MAGENTIC.advance(stalled, "Orchestrator", "FACTS: new\nPLAN: 1. FileSurfer").kind == "plan"
    )
    going = {"plan_id": "m1", "stall": 0}
    step = MAGENTIC.advance(
        going,
        "Orchestrator",
        '{"is_request_satisfied": false, "is_in_loop": true, '
        '"next_speaker": "FileSurfer", "instruction": "read numbers.txt"}',
    )
    assert (step.kind, step.next, step.stall) == ("instruction", "FileSurfer", 1)
    assert (
        MAGENTIC.advance(going, "ComputerTerminal", "Exit ok. Output:\n60").next == "Orchestrator"
    )


def test_progress_ledger_survives_a_reply_cut_before_its_closing_brace() -> None:
    cut = '{"is_request_satisfied": true, "final_answer": 10, "next_speaker": "Coder|FileSurfer", "instr'
    assert parse_progress_ledger(cut) == {
        "is_request_satisfied": True,
        "final_answer": 10,
        "next_speaker": "Coder|FileSurfer",
    }
    done = MAGENTIC.advance({"plan_id": "m1"}, "Orchestrator", cut)
    assert (done.kind, done.done, done.final_answer) == ("final", True, "10")
    assert speaker_named("Coder|FileSurfer") == "Coder" and speaker_named("nobody") is None
    assert parse_progress_ledger("no ledger here") is None
