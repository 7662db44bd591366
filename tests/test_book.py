"""Order book: exact levels, ordering, deletes, snapshot reset."""

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tickwire.book import Book


def test_snapshot_then_delta_keeps_exact_strings_and_order():
    b = Book()
    b.apply_snapshot([("100.10", "1.000"), ("100.20", "2"), ("99.9", "3")], [("100.30", "4"), ("100.40", "5")])
    assert b.best_bid() == ("100.20", "2")
    assert b.best_ask() == ("100.30", "4")
    b.apply_delta([("100.20", "0"), ("100.25", "0.50")], [("100.30", "0"), ("100.35", "7.10")])
    bids, asks = b.top(10)
    assert bids == [("100.25", "0.50"), ("100.10", "1.000"), ("99.9", "3")]
    assert asks == [("100.35", "7.10"), ("100.40", "5")]


def test_new_snapshot_leaves_no_ghost_levels():
    b = Book()
    b.apply_snapshot([("1", "1"), ("2", "1")], [("3", "1")])
    b.apply_snapshot([("1.5", "9")], [("4", "2")])
    assert b.bids == {"1.5": "9"} and b.asks == {"4": "2"}
    assert b.top(5) == ([("1.5", "9")], [("4", "2")])


def test_delete_of_unknown_level_is_ignored_and_zero_spellings_delete():
    b = Book()
    b.apply_snapshot([("10", "1")], [("11", "1")])
    b.apply_delta([("9", "0")], [("11", "0.000")])
    assert b.bids == {"10": "1"} and b.asks == {}


levels = st.lists(st.tuples(st.integers(1, 500), st.sampled_from(["0", "1", "2.5", "0.001", "7"])), max_size=30)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(levels, levels), min_size=1, max_size=20))
def test_book_matches_a_naive_model(deltas):
    b = Book()
    model_b: dict[str, str] = {}
    model_a: dict[str, str] = {}
    b.apply_snapshot([], [])
    for bids, asks in deltas:
        bl = [(f"{p / 10:.1f}", s) for p, s in bids]
        al = [(f"{p / 10 + 100:.1f}", s) for p, s in asks]
        b.apply_delta(bl, al)
        for side, lv in ((model_b, bl), (model_a, al)):
            for p, s in lv:
                if Decimal(s) == 0:
                    side.pop(p, None)
                else:
                    side[p] = s
    exp_b = sorted(model_b.items(), key=lambda kv: -Decimal(kv[0]))
    exp_a = sorted(model_a.items(), key=lambda kv: Decimal(kv[0]))
    assert b.top(1000) == (exp_b, exp_a)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(levels, levels, st.booleans()), min_size=1, max_size=40))
def test_lazy_order_is_exact_whether_read_after_every_update_or_rarely(deltas):
    b = Book()
    model_b: dict[str, str] = {}
    b.apply_snapshot([("25.0", "1")], [("125.0", "1")])
    model_b["25.0"] = "1"
    model_a = {"125.0": "1"}
    for bids, asks, read in deltas:
        bl = [(f"{p / 10:.1f}", s) for p, s in bids]
        al = [(f"{p / 10 + 100:.1f}", s) for p, s in asks]
        b.apply_delta(bl, al)
        for side, lv in ((model_b, bl), (model_a, al)):
            for p, s in lv:
                side.pop(p, None) if Decimal(s) == 0 else side.__setitem__(p, s)
        if read:
            exp_b = sorted(model_b.items(), key=lambda kv: -Decimal(kv[0]))
            exp_a = sorted(model_a.items(), key=lambda kv: Decimal(kv[0]))
            assert b.top(3) == (exp_b[:3], exp_a[:3])
            assert b.best_bid() == (exp_b[0] if exp_b else None)
    exp_b = sorted(model_b.items(), key=lambda kv: -Decimal(kv[0]))
    exp_a = sorted(model_a.items(), key=lambda kv: Decimal(kv[0]))
    assert b.top(10_000) == (exp_b, exp_a)


def test_snapshot_after_the_order_was_read_reorders_from_scratch():
    b = Book()
    b.apply_snapshot([("1", "1"), ("2", "1")], [("3", "1")])
    assert b.best_bid() == ("2", "1")  # the order is now kept on every update
    b.apply_snapshot([("1.5", "9"), ("0.5", "1")], [("4", "2"), ("3.5", "1")])
    b.apply_delta([("1.7", "3"), ("0.5", "0")], [("3.5", "0")])
    assert b.top(5) == ([("1.7", "3"), ("1.5", "9")], [("4", "2")])


def test_order_is_kept_per_update_for_frequent_readers_and_sorted_per_read_for_rare_ones():
    b = Book()
    b.apply_snapshot([(f"{100 - i}", "1") for i in range(50)], [(f"{101 + i}", "1") for i in range(50)])
    model_bids = {f"{100 - i}": "1" for i in range(50)}

    def check():
        exp = sorted(model_bids.items(), key=lambda kv: -Decimal(kv[0]))[:5]
        assert b.top(5)[0] == exp and b.best_bid() == exp[0]

    for i in range(6):  # a reader of every update: after a few reads the order is kept per update
        price = f"{100.5 + i}"
        b.apply_delta([(price, "2")], [])
        model_bids[price] = "2"
        check()
    assert b.bids_side.eager and b.asks_side.eager
    for i in range(300):  # then nobody reads for a long while (a recorder's snapshot cadence)
        price = f"{100 - i % 40}"
        b.apply_delta([(price, str(i + 1))], [])
        model_bids[price] = str(i + 1)
    check()  # the rare read switches the book back to dict-only updates, and is exact
    assert not b.bids_side.eager
    b.apply_delta([("106.5", "9"), ("105.5", "0")], [])
    model_bids["106.5"] = "9"
    model_bids.pop("105.5")
    check()  # sorted again on demand
