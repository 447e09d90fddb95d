"""until_answered: the one wait for a service that has just started."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from o_bus.common.answers import until_answered


async def test_returns_the_first_reply_once_something_answers(nc: Client) -> None:
    attempts = 0
    failed_twice = asyncio.Event()

    def count() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 3:  # two attempts went unanswered
            failed_twice.set()

    async def answer(msg: Msg) -> None:
        await msg.respond(b"ready")

    async def start_late() -> None:
        await failed_twice.wait()  # the service comes up after the first attempts failed
        await nc.subscribe("svc.status", cb=answer)

    starter = asyncio.create_task(start_late())
    reply = await until_answered(nc, "svc.status", timeout=30, attempt=0.1, pause=0.01, check=count)
    await starter
    assert reply == b"ready"
    assert attempts >= 3


async def test_gives_up_with_the_subject_named(nc: Client) -> None:
    with pytest.raises(TimeoutError, match=r"nothing answered on nobody\.status"):
        await until_answered(nc, "nobody.status", timeout=0.2, attempt=0.05, pause=0.01)


async def test_a_failing_check_stops_the_wait(nc: Client) -> None:
    def exited() -> None:
        raise RuntimeError("the service exited with status 1")

    with pytest.raises(RuntimeError, match="exited"):
        await until_answered(nc, "nobody.status", timeout=30, check=exited)
