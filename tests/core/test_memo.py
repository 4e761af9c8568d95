"""core.memo: a result per live object and context, never another object's."""

from __future__ import annotations

from carehub.core.memo import IdentityMemo


def counting() -> tuple[list[int], IdentityMemo[int]]:
    return [], IdentityMemo(limit=3)


def test_the_same_object_is_computed_once() -> None:
    calls, memo = counting()
    doc = {"a": 1}
    assert memo.value(doc, lambda: calls.append(1) or 7) == 7
    assert memo.value(doc, lambda: calls.append(1) or 8) == 7
    assert len(calls) == 1


def test_an_equal_but_other_object_is_computed_again() -> None:
    memo: IdentityMemo[str] = IdentityMemo()
    first, second = {"a": 1}, {"a": 1}
    assert memo.value(first, lambda: "first") == "first"
    assert memo.value(second, lambda: "second") == "second"


def test_another_context_is_computed_again() -> None:
    memo: IdentityMemo[str] = IdentityMemo()
    doc, old_codes, new_codes = {"a": 1}, frozenset({"F10.20"}), frozenset({"F10.20"})
    assert memo.value(doc, lambda: "old", old_codes) == "old"
    assert memo.value(doc, lambda: "new", new_codes) == "new"  # equal, but another object: a reloaded value set
    assert memo.value(doc, lambda: "again", new_codes) == "new"


def test_a_full_memo_starts_again_and_holds_what_it_remembers() -> None:
    calls, memo = counting()
    docs = [{"n": n} for n in range(5)]
    for doc in docs:
        memo.value(doc, lambda: calls.append(1) or 0)
    assert len(memo) <= 3
    assert len(calls) == 5
    memo.value(docs[-1], lambda: calls.append(1) or 0)  # the last one is still held
    assert len(calls) == 5
