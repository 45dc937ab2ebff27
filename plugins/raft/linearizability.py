"""A linearizability checker for client histories (Wing & Gong's search with Lowe's memoization).

A history is a list of operations, each with the time the client invoked it and the time it
got the answer (``math.inf`` if it never did: such an operation may or may not have taken
effect). The history is linearizable if every operation can be given a single instant between
its call and its return such that, in that order, each one is legal for a sequential model.

The search walks the history in time order, tentatively linearizing any operation that is
already called and is legal in the current state, and backtracks when it reaches the return of
an operation it has not linearized. A set of (linearized operations, model state) pairs already
explored keeps it from exploring the same configuration twice. Independent keys are checked
separately, which keeps each search small.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

State = TypeVar("State", bound=Hashable)


@dataclass
class Operation:
    """One client call on a key-value register: a put of ``value``, or a get that read ``value``."""

    client: int
    key: str
    kind: Literal["put", "get"]
    #: The value written (put) or read (get; None: the key was absent).
    value: str | None
    call: float
    #: When the answer arrived; ``math.inf`` for an operation that never answered.
    ret: float = math.inf


class Model(Protocol, Generic[State]):
    """A sequential specification: an initial state and whether an operation is legal in a state."""

    def init(self) -> State: ...

    def step(self, state: State, op: Operation) -> tuple[bool, State]: ...


class RegisterModel:
    """A single register: a put sets the value, a get must read the current value."""

    def init(self) -> str | None:
        return None

    def step(self, state: str | None, op: Operation) -> tuple[bool, str | None]:
        if op.kind == "put":
            return True, op.value
        return op.value == state, state


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    #: For a failure: which key's history cannot be linearized, and its operations.
    reason: str = ""


class _Event:
    __slots__ = ("op", "is_call", "match", "prev", "next")

    def __init__(self, op: int, is_call: bool) -> None:
        self.op = op
        self.is_call = is_call
        self.match: _Event | None = None
        self.prev: _Event | None = None
        self.next: _Event | None = None


def _event_list(ops: list[Operation]) -> _Event:
    """A doubly linked list of call and return events in time order, behind a sentinel head.

    At equal times calls come first, so operations that touch at an instant count as concurrent.
    """
    events = []
    for i, op in enumerate(ops):
        if op.ret < op.call:
            raise ValueError(f"operation {op} returns before it is called")
        call, ret = _Event(i, True), _Event(i, False)
        call.match = ret
        events.append((op.call, 0, i, call))
        events.append((op.ret, 1, i, ret))
    events.sort(key=lambda e: e[:3])
    head = _Event(-1, False)
    prev = head
    for *_, event in events:
        prev.next, event.prev = event, prev
        prev = event
    return head


def _lift(call: _Event) -> None:
    for event in (call, call.match):
        assert event is not None and event.prev is not None
        event.prev.next = event.next
        if event.next is not None:
            event.next.prev = event.prev


def _unlift(call: _Event) -> None:
    for event in (call.match, call):
        assert event is not None and event.prev is not None
        event.prev.next = event
        if event.next is not None:
            event.next.prev = event


def check_operations(model: Model[State], ops: list[Operation]) -> bool:
    """Whether ``ops`` (all on one independent object) are linearizable with respect to ``model``."""
    head = _event_list(ops)
    state = model.init()
    linearized = 0
    explored: set[tuple[int, Hashable]] = set()
    stack: list[tuple[_Event, State]] = []
    event = head.next
    while head.next is not None:
        assert event is not None
        if event.is_call:
            legal, new_state = model.step(state, ops[event.op])
            if legal:
                candidate = linearized | (1 << event.op)
                if (candidate, new_state) not in explored:
                    explored.add((candidate, new_state))
                    stack.append((event, state))
                    state, linearized = new_state, candidate
                    _lift(event)
                    event = head.next
                    continue
            event = event.next
        else:
            # The earliest pending return belongs to an operation not linearized yet: backtrack.
            if not stack:
                return False
            event, state = stack.pop()
            linearized &= ~(1 << event.op)
            _unlift(event)
            event = event.next
    return True


def check_kv_history(history: Iterable[Operation]) -> CheckResult:
    """Check a key-value history key by key against ``RegisterModel``."""
    by_key: dict[str, list[Operation]] = {}
    for op in history:
        by_key.setdefault(op.key, []).append(op)
    model = RegisterModel()
    for key, ops in sorted(by_key.items()):
        if not check_operations(model, ops):
            listing = "; ".join(
                f"c{op.client} {op.kind}({op.value!r}) [{op.call}, {op.ret}]" for op in sorted(ops, key=lambda o: o.call)
            )
            return CheckResult(False, f"key {key!r} is not linearizable: {listing}")
    return CheckResult(True)
