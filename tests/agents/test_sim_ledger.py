"""The sim's per-transcript folds: the Solver's ledger and the transcript digest give the value of
a fold over the whole transcript whatever was folded before, and a turn costs its new steps."""

from __future__ import annotations

import hashlib
import random

from branchpoint.agents import sim
from branchpoint.agents.transcripts import PrefixFold
from branchpoint.model import Step


def step(i: int, agent: str, content: str) -> Step:
    return Step(run_id="r", index=i, agent=agent, kind="message", content=content)


def naive_done(transcript: list[Step]) -> dict[int, tuple[str, float]]:
    done: dict[int, tuple[str, float]] = {}
    for s in transcript:
        if s.agent == "Solver":
            for n, expr, value in sim._ITEM.findall(s.content):
                done[int(n)] = (expr, float(value))
    return done


def naive_digest(transcript: list[Step]) -> str:
    digest = ""
    for s in transcript:
        digest = hashlib.sha256(f"{digest}\x00{s.content}".encode()).hexdigest()
    return digest


def random_transcript(rng: random.Random, n: int) -> list[Step]:
    steps = []
    for i in range(n):
        agent = rng.choice(["Planner", "Solver", "Verifier"])
        item = rng.randint(1, 6)
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        value = a + b + rng.choice([0, 0, 1])  # sometimes wrong
        steps.append(step(i, agent, f"Item {item}: {a} + {b} = {value}"))
    return steps


def test_ledger_and_digest_equal_the_full_fold_for_growing_branching_and_unrelated_transcripts():
    rng = random.Random(7)
    base = random_transcript(rng, 40)
    other = random_transcript(rng, 40)
    cases = [base[:n] for n in range(41)]  # a run growing a step at a time
    cases += [base[:20] + other[20:30], base[:25]]  # a fork, then the parent again
    cases += [other[:10] + base[10:20]]  # shared Step objects after a different start
    cases += [list(reversed(base[:15])), [base[5]], base[:3] * 2]
    for transcript in cases:
        book = sim.ledger(transcript)
        done = naive_done(transcript)
        assert dict(book.done) == done
        assert book.wrong == {k for k, (e, v) in done.items() if sim.evaluate(e) != v}
        assert book.top == (max(done) if done else None)
        assert sim.transcript_digest(transcript) == naive_digest(transcript)


def test_verifier_sends_back_the_lowest_wrong_item_and_accepts_once_it_is_recomputed():
    wrong = [step(0, "Solver", "Item 1: 2 + 2 = 4\nItem 2: 3 * 3 = 10")]

    def verify(transcript: tuple[Step, ...]) -> str:
        return sim.verifier_turn(
            sim.SimContext(None, "Verifier", 1, (), 0, 0, transcript, None, None)  # type: ignore[arg-type]
        )

    said = verify(tuple(wrong))
    assert said.startswith("Item 2 is wrong: 3 * 3 is not 10")
    fixed = (*wrong, step(1, "Verifier", said), step(2, "Solver", "Item 2: 3 * 3 = 9"))
    assert verify(fixed) == "FINAL ANSWER: 9"


def test_prefix_fold_adds_only_the_new_steps_of_a_transcript_it_has_seen_start():
    added: list[int] = []

    def add(total: int, s: Step) -> int:
        added.append(s.index)
        return total + s.index

    fold = PrefixFold(0, add)
    steps = [step(i, "Solver", str(i)) for i in range(30)]
    assert fold(steps[:10]) == sum(range(10))
    added.clear()
    assert fold(steps[:13]) == sum(range(13))  # three steps later: only those are added
    assert added == [10, 11, 12]
    added.clear()
    assert fold([steps[0], *steps[2:13]]) == sum(range(13)) - 1  # not a start: folded whole
    assert added == [0, *range(2, 13)]
