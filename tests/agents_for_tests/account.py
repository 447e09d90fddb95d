"""Test agent ``account``: the README's account (it rejects overdrafts), with a fitness.

The fitness says what the bank wants from a version: serve what clients ask for, without
letting a balance go below ``-OVERDRAFT``. Live (no overdraft) scores 0 on the withdrawals it
rejects; a version that grants a small overdraft serves more of them and scores higher; one
that refuses withdrawals it could serve scores lower. The evolution tests derive candidate
versions from this source (tests/test_evolution_account.py).

Loaded by path: ``--agent /abs/path/tests/agents_for_tests/account.py:account``.
"""

from __future__ import annotations

from pydantic import Field

from o_bus import AgentDefinition, Command, CommandRejected, Event, State

__all__ = ["OVERDRAFT", "account"]

OVERDRAFT = 50


class Account(State):
    balance: int = 0


class Deposit(Command):  # command name: "deposit"
    amount: int = Field(gt=0)


class Withdraw(Command):
    amount: int = Field(gt=0)


class Deposited(Event):  # event type: "deposited", version 1
    amount: int


class Withdrawn(Event):
    amount: int


account = AgentDefinition("account", state=Account, version="1.0.0")


@account.command
def deposit(state: Account, cmd: Deposit) -> Deposited:
    return Deposited(amount=cmd.amount)


@account.command
def withdraw(state: Account, cmd: Withdraw) -> Withdrawn:
    if cmd.amount > state.balance:
        raise CommandRejected("insufficient funds")  # reply code: command_rejected
    return Withdrawn(amount=cmd.amount)


@account.applies
def _(state: Account, event: Deposited) -> Account:
    return state.model_copy(update={"balance": state.balance + event.amount})


@account.applies
def _(state: Account, event: Withdrawn) -> Account:
    return state.model_copy(update={"balance": state.balance - event.amount})


@account.fitness
def served(state: Account, cmd: Command, events: list[Event]) -> float:
    """1 for a request served within the overdraft limit, 0 for a refused withdrawal, -1 for
    a withdrawal beyond the limit."""
    if not isinstance(cmd, Withdraw):
        return 1.0
    if not any(isinstance(e, Withdrawn) for e in events):
        return 0.0
    return 1.0 if state.balance - cmd.amount >= -OVERDRAFT else -1.0
