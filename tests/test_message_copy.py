"""A network Message survives copy, deepcopy and pickle: run records that hold
messages can be copied and sent to another process. `Message.__getattr__`
reads body fields, so a lookup made before the body exists (as copy and
pickle make on a half-built object) must raise AttributeError, not recurse."""

from __future__ import annotations

import copy
import pickle

import pytest

from labkit import NetConfig, Network, Simulator
from labkit.net import Message


class Sink:
    def __init__(self):
        self.alive, self.got = True, []

    def deliver(self, msg):
        self.got.append(msg)


def sent_messages() -> list[Message]:
    """Messages as the network makes them (its fast path, not __init__)."""
    sim = Simulator(1)
    net = Network(sim, NetConfig(latency=0.001))
    sink = Sink()
    net.attach("a", Sink())
    net.attach("b", sink)
    net.send("a", "b", "append_entries", {"term": 3, "entries": ((1, "x"),)})
    net.send("a", "b", "heartbeat", {})
    sim.run()
    return sink.got


def same(a: Message, b: Message) -> bool:
    return ((a.src, a.dst, a.kind, a.id, dict(a.body))
            == (b.src, b.dst, b.kind, b.id, dict(b.body)))


def copies():
    yield "copy", copy.copy
    yield "deepcopy", copy.deepcopy
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        yield f"pickle{protocol}", lambda m, p=protocol: pickle.loads(
            pickle.dumps(m, protocol=p))


@pytest.mark.parametrize("how,duplicate", list(copies()), ids=[h for h, _ in copies()])
def test_a_copy_has_the_same_fields_and_is_still_read_only(how, duplicate):
    messages = sent_messages()
    assert len(messages) == 2
    for msg in messages:
        twin = duplicate(msg)
        assert twin is not msg and same(twin, msg)
        with pytest.raises(TypeError):
            twin.body["term"] = 4
    assert duplicate(messages[0]).term == 3
    assert duplicate(messages[0]).entries == ((1, "x"),)


def test_a_half_built_message_has_no_attributes_instead_of_recursing():
    bare = object.__new__(Message)           # what unpickling starts from
    assert not hasattr(bare, "__setstate__")
    assert not hasattr(bare, "_private")
    with pytest.raises(AttributeError):
        bare.term                            # noqa: B018 (the lookup is the test)


def test_a_missing_field_still_says_which_fields_exist():
    msg = Message("a", "b", "vote", {"term": 1}, 0)
    with pytest.raises(AttributeError, match=r"no field 'ballot'.*\['term'\]"):
        msg.ballot                           # noqa: B018
    assert not hasattr(msg, "__setstate__")
