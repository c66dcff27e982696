"""The memo of policy data by identity: what is made once per version or criteria tuple, and how it stays bounded."""

from __future__ import annotations

from cds.memo import IdentityMemo


def test_a_value_is_made_once_per_object_and_detail_and_never_given_to_an_equal_other():
    made = []
    memo = IdentityMemo()
    first, equal = ({"a": 1},), ({"a": 1},)

    def make(data, detail):
        made.append((id(data), detail))
        return len(made)

    assert memo.get(first, "x", make, first, "x") == memo.get(first, "x", make, first, "x") == 1
    assert memo.get(first, "y", make, first, "y") == 2  # another detail
    assert memo.get(equal, "x", make, equal, "x") == 3  # equal data, another object: its own value


def test_a_full_memo_starts_again_rather_than_grow():
    memo = IdentityMemo(size=4)
    kept = [object() for _ in range(10)]  # alive, so no id is reused
    for n, anchor in enumerate(kept):
        assert memo.get(anchor, None, lambda n=n: n) == n
    assert len(memo._entries) <= 4
