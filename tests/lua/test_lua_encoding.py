"""Shortcuts of the hot scripts give the same bytes and names as the general code: the stored arrays written
directly (publish, claim) and the key names built on first use (queue_keys)."""

from __future__ import annotations

from typing import Any

import pytest
from redis import exceptions as redis_errors

from broker.store.keys import QUEUE_PARTS, QueueKeys
from broker.store.scripts import expand

# Each case: the general encoding (msg_put's, through state_pack) against the shortcut.
STATES = expand("""--@include message
local cases = {}
for _, days in ipairs({1, 4, 14, 127, 128}) do
  for _, priority in ipairs({0, 9}) do
    for _, due in ipairs({0, 1, 127, 128, 30000}) do
      for _, group in ipairs({false, "g", string.rep("x", 31), string.rep("y", 32)}) do
        for _, seq in ipairs({1, 4294967295, 4294967296, 1099511627776}) do
          -- A new message: new_state against the fields msg_put stores.
          local general = state_pack({days, priority, due, group, 0, 0, math.floor(seq / 4294967296), false,
            false, false, false})
          cases[#cases + 1] = {"new", days, priority, due, tostring(group), seq, general,
            new_state(days, priority, due, group, seq)}
          -- Delivered once more: delivered_state on the array as read, against the fields msg_put stores.
          for _, counts in ipairs({{0, 0}, {0, 5}, {126, 126}, {127, 127}, {3, 200}}) do
            for _, source in ipairs({false, "src"}) do
              local stored = state_pack({days, priority, due, group, counts[1], counts[2],
                math.floor(seq / 4294967296), source, false, false, false}) .. "payload"
              local _, s = cmsgpack.unpack_one(stored)
              local packed = delivered_state(s)
              local expected = state_pack({days, priority, due, group, counts[1] + 1, counts[2] + 1,
                math.floor(seq / 4294967296), source, false, false, false})
              cases[#cases + 1] = {"delivered", days, priority, due, tostring(group), seq, expected, packed,
                counts[1], counts[2], tostring(source)}
            end
          end
        end
      end
    end
  end
end
return cases
""")

KEYS = expand("""--@include keys
local qk = queue_keys(ARGV[1], ARGV[2])
local names = {}
for i = 3, #ARGV do names[#names + 1] = qk[ARGV[i]] end
names[#names + 1] = qk[ARGV[3]] -- read again: kept
return names
""")


async def test_stored_arrays_written_directly_match_the_general_encoding(redis_client: Any) -> None:
    cases = await redis_client.eval(STATES, 0)
    assert len(cases) > 1000
    for case in cases:
        expected, actual = case[6], case[7]
        assert actual == expected, f"{case[0]} {[c for i, c in enumerate(case) if i not in (6, 7)]}"


async def test_queue_keys_are_the_names_keys_py_builds(redis_client: Any) -> None:
    parts = list(QUEUE_PARTS)
    names = await redis_client.eval(KEYS, 0, "v1:{proj}", "orders", *parts)
    expected = QueueKeys("v1:{proj}", "orders").all()
    assert [n.decode() for n in names] == [*expected, expected[0]]


@pytest.mark.parametrize("part", ["bogus", "tag2", "1"])
async def test_an_unknown_queue_part_is_an_error(redis_client: Any, part: str) -> None:
    with pytest.raises(redis_errors.ResponseError, match="unknown queue part"):
        await redis_client.eval(KEYS, 0, "v1:{proj}", "orders", part)
