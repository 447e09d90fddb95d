"""The declarative agent API: decorators, command parsing, deciding, folding, upcasting."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from pydantic import Field

from o_bus.agent.catalogue import Catalogue, load_definition
from o_bus.agent.definition import AgentDefinition
from o_bus.agents.counter import (
    CounterState,
    Increment,
    Incremented,
    Reset,
    ResetDone,
    counter,
)
from o_bus.agents.echo import echo
from o_bus.common.connect import connect
from o_bus.config import StorageConfig
from o_bus.errors import (
    AgentCodeError,
    CommandRejected,
    ConfigurationError,
    ErrorCode,
    InvalidRequestError,
)
from o_bus.events.model import Command, Event, State, snake_case
from o_bus.events.upcasting import UpcasterChain
from o_bus.replay.rebuild import rebuild
from o_bus.store.event_log import NewEvent, event_headers, utc_now
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.provision import provision
from o_bus.wire.codec import Encoding

# -- a small agent of our own ----------------------------------------------------------------------


class CartState(State):
    items: tuple[str, ...] = ()
    checked_out: bool = False


class AddItem(Command):
    sku: str = Field(min_length=1)
    qty: int = Field(default=1, ge=1, le=10)


class Checkout(Command):
    command_name = "pay-now"


class ItemAdded(Event):
    sku: str


class CheckedOut(Event):
    event_type = "cart.checked_out"
    event_version = 2


class NotAnEvent(State):
    pass


def cart_definition() -> AgentDefinition[CartState]:
    cart: AgentDefinition[CartState] = AgentDefinition("cart", state=CartState, version="0.1")

    @cart.command
    def add_item(state: CartState, cmd: AddItem) -> list[ItemAdded]:
        if state.checked_out:
            raise CommandRejected("the cart is closed")
        return [ItemAdded(sku=cmd.sku) for _ in range(cmd.qty)]

    @cart.command
    def checkout(state: CartState, cmd: Checkout) -> CheckedOut | None:
        return None if state.checked_out else CheckedOut()

    @cart.applies
    def on_added(state: CartState, event: ItemAdded) -> CartState:
        return state.model_copy(update={"items": (*state.items, event.sku)})

    @cart.applies
    def on_checked_out(state: CartState, event: CheckedOut) -> CartState:
        return state.model_copy(update={"checked_out": True})

    return cart


def test_names_default_to_snake_case() -> None:
    assert snake_case("AddItem") == "add_item"
    assert snake_case("HTTPThing") == "h_t_t_p_thing"
    assert AddItem.command_name == "add_item"
    assert Checkout.command_name == "pay-now"
    assert ItemAdded.event_type == "item_added"
    assert (ItemAdded.event_version, CheckedOut.event_version) == (1, 2)
    assert ResetDone.event_type == "reset"
    assert Increment.command_name == "increment"


def test_decorators_infer_command_and_event_types() -> None:
    cart = cart_definition()
    assert cart.command_types == {"add_item": AddItem, "pay-now": Checkout}
    assert cart.event_types == {"item_added": ItemAdded, "cart.checked_out": CheckedOut}
    assert counter.command_types == {"increment": Increment, "reset": Reset}
    counter_events: dict[str, type[Event]] = {"incremented": Incremented, "reset": ResetDone}
    assert counter.event_types == counter_events
    assert sorted(echo.command_types) == ["say"]
    assert cart.initial_state() == CartState()


def test_introspection_returns_copies() -> None:
    cart = cart_definition()
    cart.event_types.clear()
    cart.command_types.clear()
    assert len(cart.event_types) == 2
    assert len(cart.command_types) == 2


def _fresh() -> AgentDefinition[CartState]:
    return AgentDefinition("bad", state=CartState, version="0")


def test_handler_with_one_parameter_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="exactly"):

        @_fresh().command
        def one(state: CartState) -> None:
            return None


def test_handler_with_three_parameters_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="exactly"):

        @_fresh().command
        def three(state: CartState, cmd: AddItem, extra: int) -> None:
            return None


def test_unannotated_command_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="annotate"):

        @_fresh().command
        def bare(state, cmd):  # type: ignore[no-untyped-def]
            return None


@pytest.mark.parametrize("annotation", [int, ItemAdded, NotAnEvent, "list[AddItem]"])
def test_command_annotated_with_a_non_command_is_refused(annotation: Any) -> None:
    def handler(state: CartState, cmd: Any) -> None:
        return None

    handler.__annotations__["cmd"] = annotation
    with pytest.raises(ConfigurationError):
        _fresh().command(handler)


@pytest.mark.parametrize("annotation", [int, AddItem, CartState])
def test_applier_annotated_with_a_non_event_is_refused(annotation: Any) -> None:
    def applier(state: CartState, event: Any) -> CartState:
        return state

    applier.__annotations__["event"] = annotation
    with pytest.raises(ConfigurationError):
        _fresh().applies(applier)


def test_handler_annotated_with_an_undefined_name_is_refused() -> None:
    def handler(state: CartState, cmd: Any) -> None:
        return None

    handler.__annotations__["cmd"] = "UndefinedCommand"
    with pytest.raises(ConfigurationError):
        _fresh().command(handler)


def test_command_registered_twice_is_refused() -> None:
    cart = _fresh()

    @cart.command
    def first(state: CartState, cmd: AddItem) -> None:
        return None

    with pytest.raises(ConfigurationError, match="twice"):

        @cart.command
        def second(state: CartState, cmd: AddItem) -> None:
            return None


def test_applier_registered_twice_is_refused() -> None:
    cart = _fresh()

    @cart.applies
    def first(state: CartState, event: ItemAdded) -> CartState:
        return state

    with pytest.raises(ConfigurationError, match="twice"):

        @cart.applies
        def second(state: CartState, event: ItemAdded) -> CartState:
            return state


# -- parsing commands ------------------------------------------------------------------------------


def test_parse_command_json_and_msgpack() -> None:
    assert counter.parse_command("increment", b'{"by": 4}', Encoding.JSON) == Increment(by=4)
    assert counter.parse_command("increment", b"", Encoding.JSON) == Increment(by=1)
    packed = msgpack.packb({"by": -3})
    assert counter.parse_command("increment", packed, Encoding.MSGPACK) == Increment(by=-3)
    assert counter.parse_command("increment", b"", Encoding.MSGPACK) == Increment()
    assert counter.parse_command("increment", msgpack.packb(None), Encoding.MSGPACK) == Increment()
    assert counter.parse_command("reset", b"{}", Encoding.JSON) == Reset()


def test_parse_unknown_command() -> None:
    with pytest.raises(InvalidRequestError) as info:
        counter.parse_command("decrement", b"{}", Encoding.JSON)
    assert info.value.code is ErrorCode.UNKNOWN_COMMAND
    assert "increment" in info.value.message
    assert "reset" in info.value.message


@pytest.mark.parametrize(
    "body",
    [
        {"by": "many"},
        {"by": 1.5},
        {"by": 2**60},
        {"by": 1, "extra": True},
        [1, 2],
        "text",
        7,
    ],
    ids=["string", "fraction", "too-big", "extra-field", "array", "scalar-string", "scalar"],
)
@pytest.mark.parametrize("encoding", list(Encoding))
def test_parse_invalid_payload(body: Any, encoding: Encoding) -> None:
    raw = json.dumps(body).encode() if encoding is Encoding.JSON else msgpack.packb(body)
    with pytest.raises(InvalidRequestError) as info:
        counter.parse_command("increment", raw, encoding)
    assert info.value.code is ErrorCode.INVALID_PAYLOAD
    assert info.value.details["errors"]
    assert "'increment'" in info.value.message


def test_invalid_payload_lists_every_field() -> None:
    cart = cart_definition()
    with pytest.raises(InvalidRequestError) as info:
        cart.parse_command("add_item", b'{"sku": "", "qty": 99}', Encoding.JSON)
    locations = {tuple(e["loc"]) for e in info.value.details["errors"]}
    assert locations == {("sku",), ("qty",)}


def test_msgpack_garbage_is_malformed() -> None:
    with pytest.raises(InvalidRequestError) as info:
        counter.parse_command("increment", b"\xc1\xc1", Encoding.MSGPACK)
    assert info.value.code is ErrorCode.MALFORMED_REQUEST


def test_json_garbage_is_malformed_like_msgpack_garbage() -> None:
    with pytest.raises(InvalidRequestError) as info:
        counter.parse_command("increment", b"{not json", Encoding.JSON)
    assert info.value.code is ErrorCode.MALFORMED_REQUEST


MALFORMED, INVALID = ErrorCode.MALFORMED_REQUEST, ErrorCode.INVALID_PAYLOAD


@pytest.mark.parametrize(
    ("body", "encoding", "code"),
    [
        (b'{"by": "\xff\xfe"}', Encoding.JSON, MALFORMED),
        (b"\xff\xfe", Encoding.JSON, MALFORMED),
        (b"[" * 500 + b"]" * 500, Encoding.JSON, MALFORMED),
        (msgpack.packb({"by": b"\xff"}), Encoding.MSGPACK, INVALID),
        (b"\x91" * 300 + b"\xc0", Encoding.MSGPACK, INVALID),
    ],
    ids=["json-string", "json-body", "json-deep", "msgpack-bin", "msgpack-deep"],
)
def test_hostile_payload_is_an_invalid_request(
    body: bytes, encoding: Encoding, code: ErrorCode
) -> None:
    """Non-UTF-8 and deeply nested input is refused with a stable code, never a crash."""
    with pytest.raises(InvalidRequestError) as info:
        counter.parse_command("increment", body, encoding)
    assert info.value.code is code
    for error in info.value.details.get("errors", []):
        assert "input" not in error  # raw (possibly hostile) input is not echoed back


# -- deciding and folding --------------------------------------------------------------------------


def test_decide_returns_events_and_state() -> None:
    cart = cart_definition()
    decision = cart.decide(cart.initial_state(), AddItem(sku="tea", qty=3))
    assert decision.events == [ItemAdded(sku="tea")] * 3
    assert decision.state == CartState(items=("tea", "tea", "tea"))

    closed = cart.decide(decision.state, Checkout())
    assert closed.events == [CheckedOut()]
    assert closed.state.checked_out is True

    nothing = cart.decide(closed.state, Checkout())
    assert nothing.events == []
    assert nothing.state == closed.state


def test_decide_rejection_changes_nothing() -> None:
    cart = cart_definition()
    closed = CartState(checked_out=True)
    with pytest.raises(CommandRejected):
        cart.decide(closed, AddItem(sku="x"))


def test_event_without_applier_is_a_bug_not_a_refusal() -> None:
    orphan: AgentDefinition[CartState] = AgentDefinition("o", state=CartState, version="0")

    @orphan.command
    def add(state: CartState, cmd: AddItem) -> ItemAdded:
        return ItemAdded(sku=cmd.sku)

    with pytest.raises(AgentCodeError, match="no applier") as raised:
        orphan.decide(orphan.initial_state(), AddItem(sku="x"))
    assert raised.value.code is ErrorCode.INTERNAL


def test_counter_decisions() -> None:
    state = counter.initial_state()
    state = counter.decide(state, Increment(by=5)).state
    state = counter.decide(state, Increment(by=-2)).state
    assert state == CounterState(value=3, increments=2)
    decision = counter.decide(state, Reset())
    assert decision.events == [ResetDone(previous=3)]
    assert decision.state == CounterState(value=0, increments=2)


def test_fold_equals_applying_one_by_one() -> None:
    events: list[Event] = [Incremented(by=i) for i in range(1, 11)]
    events.insert(4, ResetDone(previous=10))
    folded = counter.fold(counter.initial_state(), events)
    step = counter.initial_state()
    for event in events:
        step = counter.apply(step, event)
    assert folded == step
    assert folded == CounterState(value=sum(range(5, 11)), increments=10)
    assert counter.fold(folded, []) == folded


def test_states_are_immutable() -> None:
    state = CounterState(value=1)
    with pytest.raises(ValueError, match="frozen"):
        state.value = 2  # type: ignore[misc]


# -- upcasting --------------------------------------------------------------------------------


class Measured(Event):
    """Version 3 of an event whose schema changed twice."""

    event_version = 3
    amount: int
    unit: str


class MeterState(State):
    total: int = 0
    units: tuple[str, ...] = ()


class Measure(Command):
    amount: int
    unit: str = "g"


def meter_definition(*, with_v1_step: bool = True) -> AgentDefinition[MeterState]:
    meter: AgentDefinition[MeterState] = AgentDefinition("meter", state=MeterState, version="3")

    @meter.command
    def measure(state: MeterState, cmd: Measure) -> Measured:
        return Measured(amount=cmd.amount, unit=cmd.unit)

    @meter.applies
    def on_measured(state: MeterState, event: Measured) -> MeterState:
        return state.model_copy(
            update={"total": state.total + event.amount, "units": (*state.units, event.unit)}
        )

    if with_v1_step:

        @meter.upcaster("measured", 1)
        def v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
            return {"amount": data["n"]}  # v1 called the field "n"

    @meter.upcaster("measured", 2)
    def v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "unit": "kg"}  # v3 added a unit; v2 amounts were kilograms

    return meter


def test_upcasters_migrate_v1_through_v3() -> None:
    meter = meter_definition()
    assert meter.decode_event("measured", 1, b'{"n": 4}') == Measured(amount=4, unit="kg")
    assert meter.decode_event("measured", 2, b'{"amount": 5}') == Measured(amount=5, unit="kg")
    current = b'{"amount": 6, "unit": "g"}'
    assert meter.decode_event("measured", 3, current) == Measured(amount=6, unit="g")


def test_missing_upcaster_is_a_configuration_error() -> None:
    meter = meter_definition(with_v1_step=False)
    assert meter.decode_event("measured", 2, b'{"amount": 1}') == Measured(amount=1, unit="kg")
    with pytest.raises(ConfigurationError, match="v1"):
        meter.decode_event("measured", 1, b'{"n": 1}')


def test_stored_version_newer_than_code_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="newer"):
        meter_definition().decode_event("measured", 4, b'{"amount": 1, "unit": "g"}')


def test_unknown_event_type_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="does not know"):
        meter_definition().decode_event("weighed", 1, b"{}")


def test_two_upcasters_for_one_step_are_refused() -> None:
    meter = meter_definition()
    with pytest.raises(ConfigurationError, match="two upcasters"):
        meter.upcaster("measured", 2)(lambda data: data)


def test_upcaster_chain_direct() -> None:
    chain = UpcasterChain()
    chain.register("e", 1, lambda d: {**d, "v2": True})
    chain.register("e", 2, lambda d: {**d, "v3": True})
    assert chain.upcast("e", 1, 3, {}) == {"v2": True, "v3": True}
    assert chain.upcast("e", 3, 3, {"x": 1}) == {"x": 1}
    with pytest.raises(ConfigurationError):
        chain.upcast("e", 1, 4, {})
    with pytest.raises(ConfigurationError):
        chain.upcast("other", 1, 2, {})


async def test_rebuild_upcasts_stored_old_events(nats_url: str) -> None:
    """Events written as v1 and v2 are stored as such and migrated when replayed."""
    meter = meter_definition()
    async with connect(nats_url, "test-upcast") as (nc, js):
        await provision(js, StorageConfig(storage="memory"))
        log, now = JetStreamEventLog(nc, js, "meter-1"), utc_now()
        stored = [(1, b'{"n": 2}'), (2, b'{"amount": 3}'), (3, b'{"amount": 500, "unit": "g"}')]
        batch = [
            NewEvent(body, event_headers("meter-1", seq, "measured", version, "r", 0, "1", now))
            for seq, (version, body) in enumerate(stored, 1)
        ]
        await log.append(0, batch)
        rebuilt = await rebuild(meter, log, None)
    assert rebuilt.state == MeterState(total=505, units=("kg", "kg", "g"))
    assert rebuilt.position.seq == 3
    assert rebuilt.replayed == 3


# -- the catalogue -----------------------------------------------------------------------------


def test_catalogue_discovers_the_reference_agents() -> None:
    catalogue = Catalogue.discover()
    assert {"counter", "echo"} <= set(catalogue.names())
    assert catalogue.get("counter") is counter
    with pytest.raises(InvalidRequestError) as info:
        catalogue.get("nope")
    assert info.value.code is ErrorCode.UNKNOWN_AGENT


def test_load_definition_specs() -> None:
    assert load_definition("o_bus.agents.counter:counter") is counter
    assert load_definition("o_bus.agents.echo") is echo
    with pytest.raises(ConfigurationError):
        load_definition("o_bus.agents.counter:CounterState")
    with pytest.raises(ConfigurationError):
        load_definition("/does/not/exist.py")


def test_catalogue_with_extra_definitions_from_a_file(tmp_path: Any) -> None:
    source = tmp_path / "notes.py"
    source.write_text(
        "from o_bus.agent.definition import AgentDefinition\n"
        "from o_bus.events.model import State\n"
        "class S(State):\n    n: int = 0\n"
        "notes = AgentDefinition('notes', state=S, version='1')\n"
    )
    catalogue = Catalogue.discover([str(source)])
    assert "notes" in catalogue.names()
    assert catalogue.get("notes").initial_state().model_dump() == {"n": 0}
