"""The publish argument layout (the header of publish.lua), both ways: for every combination of the columns
the store may send (delay, priority, group, fingerprint), what the store encodes is what the script reads
back, message by message; and a column list that does not match the arguments is refused."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from scriptkit import MakeQueue, message

from broker import errors
from broker.store.keys import ProjectKeys

COLUMNS = "dpgf"


@pytest.mark.parametrize("columns", ["".join(c) for n in range(5) for c in itertools.combinations(COLUMNS, n)],
                         ids=lambda c: c or "none")
async def test_each_message_reads_back_with_its_own_values(columns: str, make_queue: MakeQueue, clock: Any,
                                                           store: Any, project: str) -> None:
    queue = await make_queue("q", type="fifo" if "g" in columns else "standard", enable_priority="p" in columns)
    # Three messages: the first has every default, the other two differ from it in the chosen columns only.
    specs = [
        {"delay": 0, "priority": 0, "group": None, "key": None},
        {"delay": 5 if "d" in columns else 0, "priority": 7 if "p" in columns else 0,
         "group": "g1" if "g" in columns else None, "key": "k1" if "f" in columns else None},
        {"delay": 0, "priority": 3 if "p" in columns else 0,
         "group": "g2" if "g" in columns else None, "key": "k2" if "f" in columns else None},
    ]
    outgoing = [message({"i": i}, **spec) for i, spec in enumerate(specs)]
    sent = await store.publish(project, "q", outgoing, batch=True)
    assert len(set(sent)) == 3

    stats = await queue.stats()
    assert stats.delayed == (1 if "d" in columns else 0)
    clock.advance(10)
    got = {m.message_id: m for m in await queue.claim(10)}
    assert set(got) == set(sent)
    for mid, spec in zip(sent, specs, strict=True):
        assert got[mid].priority == spec["priority"]
        assert got[mid].group_id == spec["group"]
        assert bytes(got[mid].payload) == outgoing[sent.index(mid)].payload
    if "f" in columns:  # the fingerprint column: a message published again under its key is not stored twice
        again = await store.publish(project, "q", [outgoing[1]], batch=False)
        assert again == [sent[1]]


@pytest.mark.parametrize(("given", "sent"), [("d", ""), ("", "d"), ("pd", "dp"), ("dpgfx", "dpgf")])
async def test_a_column_list_that_does_not_match_is_refused(given: str, sent: str, make_queue: MakeQueue,
                                                            store: Any, project: str, clock: Any) -> None:
    await make_queue("q", enable_priority=True)
    pk = ProjectKeys(project)
    values = {"d": ["0"], "p": ["1"], "g": [""], "f": [""]}
    args: list[Any] = [pk.tag, "q", clock(), "", "", 1, given, b'{"a":1}']
    for column in sent:
        args += values[column]
    before = await queue_state(store, project)
    with pytest.raises(errors.InternalError):
        await store.scripts.run(store.lua.publish, [pk.queue("q").cfg, pk.seq, pk.tag, pk.account], args)
    assert await queue_state(store, project) == before


async def queue_state(store: Any, project: str) -> tuple[int, int]:
    stats = await store.stats(project, "q")
    return stats.available, stats.delayed
