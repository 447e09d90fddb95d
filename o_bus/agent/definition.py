"""The declarative agent API: a state model, pure command handlers, event appliers, a version.

Example::

    counter = AgentDefinition("counter", state=CounterState, version="1.0.0")

    @counter.command
    def increment(state: CounterState, cmd: Increment) -> Incremented:
        return Incremented(by=cmd.by)

    @counter.applies
    def _(state: CounterState, event: Incremented) -> CounterState:
        return state.model_copy(update={"value": state.value + event.by})

State is the fold of the appliers over the events. Handlers do no I/O and read no clock,
so replaying a history always gives the same state. A handler that needs the request's time
or id declares a parameter annotated with :class:`~o_bus.agent.context.DecisionContext`::

    @memory.command
    def remember(state: MemoryState, cmd: Remember, ctx: DecisionContext) -> Remembered: ...
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from o_bus.agent.context import DecisionContext, context_parameter
from o_bus.agent.queries import ProjectionSpec, Query, QueryTable
from o_bus.agent.state_migration import StateMigrations, StateStep
from o_bus.errors import (
    AgentCodeError,
    ConfigurationError,
    ErrorCode,
    InvalidRequestError,
)
from o_bus.events.model import Command, Event, State
from o_bus.events.upcasting import UpcasterChain
from o_bus.wire.codec import Encoding, decode

if TYPE_CHECKING:
    from o_bus.agent.improvement import HandOff, SearchBudget, Trigger
    from o_bus.agent.tool_binding import AgentTools, Continuation
    from o_bus.tools.spec import Tool

__all__ = ["AgentDefinition", "Decision"]

S = TypeVar("S", bound=State)
E = TypeVar("E", bound=Event)
HandlerResult = Event | Sequence[Event] | None
Handler = Callable[..., HandlerResult]  # (state, command) and maybe a DecisionContext
Fitness = Callable[..., float]  # (state, command, events), maybe a DecisionContext, feedback
Invariant = Callable[[Any], bool]


class Decision(Generic[S]):
    """The outcome of one command: the events it produced and the state after them."""

    __slots__ = ("events", "state")

    def __init__(self, events: list[Event], state: S) -> None:
        self.events = events
        self.state = state


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except (NameError, TypeError) as err:
        raise ConfigurationError(f"{fn.__qualname__}: cannot resolve annotations: {err}") from err


def _second_param_type(fn: Callable[..., Any], base: type[Any]) -> type[Any]:
    context = context_parameter(fn)
    params = [p for p in inspect.signature(fn).parameters if p != context]
    if len(params) != 2:
        raise ConfigurationError(
            f"{fn.__qualname__} must take exactly (state, {base.__name__})"
            " and optionally a DecisionContext"
        )
    annotated = _hints(fn).get(params[1])
    if not (isinstance(annotated, type) and issubclass(annotated, base)):
        raise ConfigurationError(
            f"{fn.__qualname__}: annotate the second parameter with a {base.__name__} subclass"
        )
    return annotated


def _invalid_payload(command: str, err: ValidationError) -> InvalidRequestError:
    # Input values are left out on purpose: they may be huge, binary or hostile.
    errors = err.errors(include_url=False, include_context=False, include_input=False)
    if errors and errors[0]["type"] == "json_invalid":
        return InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST,
            f"body of command {command!r} is not valid JSON: {errors[0]['msg']}",
        )
    details = [
        {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]} for e in errors[:20]
    ]
    summary = "; ".join(f"{'.'.join(d['loc']) or '(body)'}: {d['msg']}" for d in details[:5])
    return InvalidRequestError(
        ErrorCode.INVALID_PAYLOAD,
        f"invalid data for command {command!r}: {summary}",
        details={"errors": details},
    )


class AgentDefinition(Generic[S]):
    """Everything the runtime needs to run one kind of agent."""

    def __init__(
        self,
        name: str,
        *,
        state: type[S],
        version: str,
        state_schema_version: int = 1,
        description: str = "",
        genome: type[BaseModel] | None = None,
        triggers: Sequence[Trigger] = (),
        search_budget: SearchBudget | None = None,
        handoff: HandOff | None = None,
    ) -> None:
        self.name = name
        self.state_type = state
        self.version = version
        self.state_schema_version = state_schema_version
        self.description = description
        self.tools: AgentTools | None = None  # set by use_tools
        # command name -> (command type, handler, name of its DecisionContext parameter)
        self._handlers: dict[str, tuple[type[Command], Handler, str | None]] = {}
        self._appliers: dict[type[Event], Callable[[S, Any], S]] = {}
        self._event_types: dict[str, type[Event]] = {}
        self.upcasters = UpcasterChain()
        self.queries = QueryTable()  # read-only handlers, answered on o.qry.<agent>
        self.projections: list[ProjectionSpec[Any]] = []  # opened while the agent serves
        self.state_migrations = StateMigrations()
        self.fitness_function: Fitness | None = None
        self._fitness_context: str | None = None  # name of its DecisionContext parameter
        # Tunable parameters; see set_genome. Handlers ask for them with a parameter annotated
        # with this model.
        self.genome_type = genome
        self.genome: BaseModel | None = genome() if genome is not None else None
        self.invariants: dict[str, Invariant] = {}
        self.triggers: tuple[Trigger, ...] = tuple(triggers)  # when it asks to be improved
        self.search_budget = search_budget  # None: the trigger service's default
        self.handoff = handoff  # how a triggered search's winner goes live; None: HandOff()

    # -- declaration -------------------------------------------------------------------------

    def command(self, fn: Callable[..., HandlerResult]) -> Callable[..., HandlerResult]:
        """Register a pure handler ``(state, command) -> event | [events] | None``, which may
        also declare a ``DecisionContext`` parameter and a parameter annotated with the
        genome model."""
        bound = self._with_genome(fn)
        command_type = _second_param_type(bound, Command)
        if command_type.command_name in self._handlers:
            raise ConfigurationError(f"command {command_type.command_name!r} registered twice")
        self._handlers[command_type.command_name] = (command_type, bound, context_parameter(fn))
        return fn

    def applies(self, fn: Callable[[S, E], S]) -> Callable[[S, E], S]:
        """Register an applier ``(state, event) -> new state``."""
        event_type = _second_param_type(fn, Event)
        if event_type.event_type in self._event_types:
            raise ConfigurationError(f"event {event_type.event_type!r} applied twice")
        self._appliers[event_type] = fn
        self._event_types[event_type.event_type] = event_type
        return fn

    def upcaster(
        self, event_type: str, from_version: int
    ) -> Callable[
        [Callable[[dict[str, Any]], dict[str, Any]]], Callable[[dict[str, Any]], dict[str, Any]]
    ]:
        """Register a migration of ``event_type`` data from ``from_version`` to the next one."""

        def register(
            fn: Callable[[dict[str, Any]], dict[str, Any]],
        ) -> Callable[[dict[str, Any]], dict[str, Any]]:
            self.upcasters.register(event_type, from_version, fn)
            return fn

        return register

    def migrates_state(self, from_version: int) -> Callable[[StateStep], StateStep]:
        """Register a migration of state data from schema ``from_version`` to the next one."""

        def register(fn: StateStep) -> StateStep:
            self.state_migrations.register(from_version, fn)
            return fn

        return register

    def fitness(self, fn: Fitness) -> Fitness:
        """Register ``(state, command, events) -> float``: how good an outcome is (higher is
        better), optionally with a ``DecisionContext`` parameter (the request's) and the
        genome. The evolution arbiter compares a candidate's mean fitness with live's. A
        parameter annotated ``Feedback | None = None`` receives the request's feedback (see
        :mod:`o_bus.evolution.feedback.fitness`)."""
        bound = self._with_genome(fn)  # its signature no longer shows the genome parameter
        context = context_parameter(fn)
        required = [
            p
            for p in inspect.signature(bound).parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.name != context
        ]
        if len(required) > 3:
            raise ConfigurationError(
                f"{fn.__qualname__}: fitness takes (state, command, events); give any other "
                "parameter (such as feedback) a default"
            )
        self.fitness_function = bound
        self._fitness_context = context_parameter(fn)
        return fn

    def score(
        self,
        state: S,
        command: Command,
        events: Sequence[Event],
        context: DecisionContext | None = None,
    ) -> float | None:
        """The fitness of an outcome, or None when no fitness function is declared."""
        fn = self.fitness_function
        if fn is None:
            return None
        if self._fitness_context is None:
            return float(fn(state, command, events))
        if context is None:
            raise ConfigurationError(f"{fn.__qualname__} needs a decision context; none was given")
        return float(fn(state, command, events, **{self._fitness_context: context}))

    def invariant(self, fn: Callable[[S], bool]) -> Callable[[S], bool]:
        """Register ``(state) -> bool``: a property every reachable state must have. Evaluation
        reports a state where it is false (or raises) as a failure named after the function."""
        name = fn.__name__
        if name in self.invariants:
            raise ConfigurationError(f"invariant {name!r} registered twice")
        if len(inspect.signature(fn).parameters) != 1:
            raise ConfigurationError(f"invariant {fn.__qualname__} must take exactly (state)")
        self.invariants[name] = fn
        return fn

    def violated_invariants(self, state: S) -> list[str]:
        """Names of the invariants ``state`` breaks; one that raises counts as broken."""
        broken: list[str] = []
        for name, check in self.invariants.items():
            try:
                holds = check(state) is True
            except Exception:  # an invariant that cannot be evaluated does not hold
                holds = False
            if not holds:
                broken.append(name)
        return broken

    def query(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Register a read-only query handler ``(context, query) -> result`` (sync or async),
        optionally with a ``DecisionContext`` parameter (the query's id and arrival time);
        see :mod:`o_bus.agent.queries`."""
        bound = self._with_genome(fn)
        self.queries.register(_second_param_type(bound, Query), bound)
        return fn

    def projection(self, spec: ProjectionSpec[Any]) -> None:
        """Declare a projection of this agent's log (for example the memory index)."""
        self.projections.append(spec)

    # -- genome ------------------------------------------------------------------------------

    def set_genome(self, values: dict[str, Any]) -> None:
        """Use these genome values (validated by the genome model) from now on.

        A code version carries its genome in its source (``O_BUS_GENOME = {...}``, applied
        when the version is loaded), so a genome change is a new content-addressed version.
        """
        if self.genome_type is None:
            raise ConfigurationError(f"agent {self.name!r} declares no genome")
        try:
            self.genome = self.genome_type.model_validate(values)
        except ValidationError as err:
            raise ConfigurationError(
                f"genome of {self.name!r} is invalid: {err.error_count()} error(s), "
                f"first: {err.errors()[0]['msg']}"
            ) from err

    def _with_genome(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` with its parameters annotated with the genome model filled in at call time."""
        if self.genome_type is None:
            return fn
        try:
            hints = typing.get_type_hints(fn)
        except (NameError, TypeError):
            return fn  # reported by the caller's own annotation check
        signature = inspect.signature(fn)
        names = [n for n in signature.parameters if hints.get(n) is self.genome_type]
        if not names:
            return fn

        @functools.wraps(fn)
        def bound(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs, **dict.fromkeys(names, self.genome))

        kept = [p for n, p in signature.parameters.items() if n not in names]
        bound.__signature__ = signature.replace(parameters=kept)  # type: ignore[attr-defined]
        return bound

    # -- introspection -----------------------------------------------------------------------

    @property
    def command_types(self) -> dict[str, type[Command]]:
        return {name: entry[0] for name, entry in self._handlers.items()}

    @property
    def event_types(self) -> dict[str, type[Event]]:
        return dict(self._event_types)

    def initial_state(self) -> S:
        return self.state_type()

    def state_from(self, data: dict[str, Any], schema_version: int) -> S:
        """Validate state data saved under ``schema_version``, migrating it first if older."""
        if schema_version != self.state_schema_version:
            data = self.state_migrations.migrate(data, schema_version, self.state_schema_version)
        try:
            return self.state_type.model_validate(data)
        except ValidationError as err:
            raise ConfigurationError(
                f"state of schema v{schema_version} does not fit {self.name!r} "
                f"v{self.version}: {err.error_count()} error(s), first: {err.errors()[0]['msg']}"
            ) from err

    # -- runtime -----------------------------------------------------------------------------

    def parse_command(self, name: str, body: bytes, encoding: Encoding) -> Command:
        """Validate request data into the command model, or raise ``InvalidRequestError``."""
        try:
            command_type = self._handlers[name][0]
        except KeyError:
            raise InvalidRequestError(
                ErrorCode.UNKNOWN_COMMAND,
                f"agent {self.name!r} has no command {name!r}; "
                f"known: {', '.join(sorted(self._handlers))}",
            ) from None
        try:
            if encoding is Encoding.JSON:
                return command_type.model_validate_json(body or b"{}")
            data = decode(body, encoding)
            return command_type.model_validate({} if data is None else data)
        except ValidationError as err:
            raise _invalid_payload(name, err) from err

    def decide(
        self, state: S, command: Command, context: DecisionContext | None = None
    ) -> Decision[S]:
        """Run the command's handler and fold its events into a new state. ``context`` is
        passed to a handler that declares a ``DecisionContext`` parameter (it must then be
        given).

        Raises ``CommandRejected`` when the handler refuses; nothing is applied then.
        """
        _, handler, context_name = self._handlers[command.command_name]
        if context_name is None:
            result = handler(state, command)
        elif context is None:
            raise ConfigurationError(
                f"{handler.__qualname__} needs a decision context; none was given"
            )
        else:
            result = handler(state, command, **{context_name: context})
        if result is None:
            events: list[Event] = []
        elif isinstance(result, Event):
            events = [result]
        else:
            events = list(result)
        for event in events:
            state = self.apply(state, event)
        return Decision(events, state)

    def apply(self, state: S, event: Event) -> S:
        try:
            applier = self._appliers[type(event)]
        except KeyError:
            raise AgentCodeError(
                f"agent {self.name!r} has no applier for event {event.event_type!r}"
            ) from None
        return applier(state, event)

    def decode_event(self, event_type: str, version: int, body: bytes) -> Event:
        """Rebuild a stored event, migrating old versions through the upcasters."""
        try:
            cls = self._event_types[event_type]
        except KeyError:
            raise ConfigurationError(
                f"agent {self.name!r} does not know event type {event_type!r}"
            ) from None
        if version == cls.event_version:
            return cls.model_validate_json(body)
        data = self.upcasters.upcast(event_type, version, cls.event_version, from_json(body))
        return cls.model_validate(data)

    def fold(self, state: S, events: Sequence[Event]) -> S:
        for event in events:
            state = self.apply(state, event)
        return state

    # -- tools (see o_bus.tools) -------------------------------------------------------------

    def use_tools(self, *tools: Tool) -> AgentTools:
        """Declare the tools this agent's handlers may ask for; the state must subclass
        ``o_bus.tools.ToolState``. Handlers ask with ``tools.call(state, name, input)``."""
        from o_bus.agent.tool_binding import AgentTools

        if self.tools is not None:
            raise ConfigurationError(f"agent {self.name!r} declared its tools twice")
        self.tools = AgentTools(self, tools)
        return self.tools

    def on_tool_result(self, tool: str) -> Callable[[Continuation], Continuation]:
        """Register ``(state, ToolResult) -> events``, run when a call of ``tool`` completes."""
        if self.tools is None:
            raise ConfigurationError(f"agent {self.name!r}: declare use_tools(...) first")
        return self.tools.on_result(tool)
