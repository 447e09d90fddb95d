"""The splitter's intake bounds on their own: the fair queue and admission."""

from __future__ import annotations

import asyncio

from o_bus.handlers.splitter.admission import RECENT, Admission, Limits
from o_bus.handlers.splitter.fair_queue import FairQueue


async def test_the_fair_queue_serves_senders_in_turn_and_bounds_each() -> None:
    queue: FairQueue[str] = FairQueue(per_key=3, total=5)
    assert all(queue.offer("flood", f"f{i}") for i in range(3))
    assert not queue.offer("flood", "f3")  # its own queue is full
    assert queue.offer("calm", "c0")
    assert queue.offer("calm", "c1")
    assert not queue.offer("third", "t0")  # the whole queue is full
    taken = [await queue.take() for _ in range(5)]
    assert taken == ["f0", "c0", "f1", "c1", "f2"]
    waiting = asyncio.create_task(queue.empty())
    taker = asyncio.create_task(queue.take())  # comes back and finds nothing: idle
    await asyncio.wait_for(waiting, 1)
    assert not taker.done()
    taker.cancel()


def test_admission_bounds_an_agent_and_shares_it_between_senders() -> None:
    admission = Admission(Limits(per_agent=8, per_sender=100, contended_share=2))
    admission.processed("counter", 0)  # the agent reports its progress
    for _ in range(8):
        assert admission.refusal("counter", "flood") is None  # alone: all of the window
        admission.admit("counter", "flood")
    assert admission.refusal("counter", "flood") == "agent"
    for seq in range(1, 9):
        admission.stored("counter", "flood", seq)
    admission.processed("counter", 7)  # one still waits
    assert admission.outstanding("counter") == 1
    admission.admit("counter", "calm")
    admission.stored("counter", "calm", 9)
    admission.admit("counter", "flood")
    # Another sender waits at the agent: the flood may hold only the contended share.
    assert admission.refusal("counter", "flood") == "sender"
    assert admission.refusal("counter", "calm") is None
    admission.not_stored("counter", "flood")  # e.g. a duplicate: nothing new waits
    admission.processed("counter", 9)
    assert admission.outstanding("counter") == 0
    assert admission.refusal("counter", "flood") is None


def test_without_heartbeats_a_request_stops_waiting_once_stored() -> None:
    admission = Admission(Limits(per_agent=2, per_sender=2, contended_share=1))
    for seq in range(1, 10):
        assert admission.refusal("echo", "s") is None
        admission.admit("echo", "s")
        admission.stored("echo", "s", seq)
    assert admission.outstanding("echo") == 0


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_sender_between_two_requests_still_counts_as_waiting() -> None:
    clock = _Clock()
    admission = Admission(Limits(per_agent=8, per_sender=100, contended_share=2), clock)
    admission.processed("counter", 0)
    # A calm client sent a request, which was served: it holds nothing now.
    assert admission.refusal("counter", "calm") is None
    admission.admit("counter", "calm")
    admission.stored("counter", "calm", 1)
    admission.processed("counter", 1)
    # A flood arriving before the calm client's next request gets the contended share only,
    # so that request does not wait behind a whole window of the flood.
    for _ in range(2):
        assert admission.refusal("counter", "flood") is None
        admission.admit("counter", "flood")
    assert admission.refusal("counter", "flood") == "sender"
    assert admission.refusal("counter", "calm") is None
    # Once the calm client has been quiet for RECENT seconds, the flood is alone again.
    clock.now += RECENT + 0.1
    assert admission.refusal("counter", "flood") is None


def test_many_senders_each_keep_at_least_one_request() -> None:
    clock = _Clock()
    admission = Admission(Limits(per_agent=4, per_sender=100, contended_share=2), clock)
    admission.processed("counter", 0)
    senders = [f"s{i}" for i in range(10)]  # more than the agent's window
    for sender in senders:
        admission.refusal("counter", sender)
    assert admission.refusal("counter", "s0") is None  # holds nothing: one is its share
    admission.admit("counter", "s0")
    assert admission.refusal("counter", "s0") == "sender"
