"""The keyboard-wedge logic: scanner bursts become scans; a person's keys pass through, never
lost or reordered (property tests), and are released by time without waiting for another key."""

from __future__ import annotations

import string
from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.wedge import Keys, Output, Scan, WedgeConfig, WedgeDetector

GAP = WedgeConfig().max_gap
NAMED = ["Enter", "Tab", "Backspace", "Left", "Escape", "Delete"]
CHARS = string.ascii_letters + string.digits + ":/-+. "


def run(detector: WedgeDetector, events: Iterable[tuple[str, float]],
        tick_each: bool = True) -> list[Output]:
    """Feed events; tick at each deadline that falls before the next key (as the UI's timer
    does); flush at the end. Returns all outputs in order."""
    out: list[Output] = []
    for key, at in events:
        out += detector.feed(key, at)
        if tick_each and (deadline := detector.deadline()) is not None:
            out += detector.tick(deadline - 1e-4)  # too early: must release nothing
    out += detector.flush()
    return out


def timed(keys: Iterable[str], start: float, gap: float) -> list[tuple[str, float]]:
    return [(k, start + i * gap) for i, k in enumerate(keys)]


def flat(out: Iterable[Output]) -> list[str]:
    return [k for item in out for k in item.keys]


def passed(out: Iterable[Output]) -> list[str]:
    return [k for item in out if isinstance(item, Keys) for k in item.keys]


def scans(out: Iterable[Output]) -> list[str]:
    return [item.text for item in out if isinstance(item, Scan)]


def test_a_fast_burst_ended_by_enter_is_a_scan() -> None:
    out = run(WedgeDetector(), timed([*"CP1:ABCDEF", "Enter"], 10.0, 0.004))
    assert out == [Scan("CP1:ABCDEF", (*"CP1:ABCDEF", "Enter"))]


def test_typing_passes_through_in_order() -> None:
    out = run(WedgeDetector(), timed([*"1250", "Enter"], 10.0, 0.15))
    # each key is released when the next comes too late; "0" together with the Enter after it
    assert out == [Keys(("1",)), Keys(("2",)), Keys(("5",)), Keys(("0", "Enter"))]


def test_held_key_is_released_by_tick_without_another_key() -> None:
    d = WedgeDetector()
    assert d.feed("7", 1.0) == []  # held: it could be the start of a scan
    assert d.deadline() == 1.0 + GAP
    assert d.tick(1.0 + GAP / 2) == []
    assert d.tick(1.0 + GAP + 0.001) == [Keys(("7",))]
    assert d.held == () and d.deadline() is None


def test_short_fast_input_is_typing() -> None:
    out = run(WedgeDetector(), timed([*"ok", "Enter"], 0.0, 0.01))  # key rollover
    assert out == [Keys(("o", "k", "Enter"))]


def test_scan_starting_while_typing_keeps_the_persons_keys() -> None:
    typed = timed("ab", 0.0, 0.2)  # the person typed "a", "b" ...
    burst = timed([*"4006381333931", "Enter"], 0.2 + 0.02, 0.002)  # ...scan 20 ms after "b"
    out = run(WedgeDetector(), typed + burst)
    assert passed(out) == ["a", "b"] and scans(out) == ["4006381333931"]
    assert out.index(Keys(("b",))) < next(i for i, o in enumerate(out) if isinstance(o, Scan))


def test_a_named_key_during_a_burst_releases_it() -> None:
    out = run(WedgeDetector(), [*timed("abcdefg", 0, 0.005), ("Backspace", 0.04)])
    assert out == [Keys((*"abcdefg", "Backspace"))]


def test_auto_repeat_is_not_a_scan() -> None:
    out = run(WedgeDetector(), timed([*"11111111", "Enter"], 0.0, 0.025))
    assert scans(out) == [] and flat(out) == [*"11111111", "Enter"]


def test_tab_terminator_and_text_mapping() -> None:
    out = run(WedgeDetector(), timed([*"ABC123", "Tab"], 0.0, 0.003))
    assert out == [Scan("ABC123", (*"ABC123", "Tab"))]


def test_burst_without_terminator_when_allowed() -> None:
    d = WedgeDetector(WedgeConfig(require_terminator=False))
    for key, at in timed("HELLO123", 0.0, 0.003):
        assert d.feed(key, at) == []
    assert d.tick(0.021 + GAP + 0.001) == [Scan("HELLO123", tuple("HELLO123"))]
    strict = run(WedgeDetector(), timed("HELLO123", 0.0, 0.003))
    assert strict == [Keys(tuple("HELLO123"))]


def test_prefix_and_suffix_make_a_slow_scan() -> None:
    config = WedgeConfig(prefix=("\x02",), suffix=("\x03",), timing=False)
    out = run(WedgeDetector(config), timed([*"\x02CP1:XYZ\x03", "Enter"], 0.0, 0.08))
    assert out == [Scan("CP1:XYZ", tuple("\x02CP1:XYZ\x03")), Keys(("Enter",))]


def test_prefix_typed_by_a_person_is_released_after_the_timeout() -> None:
    config = WedgeConfig(prefix=tuple("]Q"))
    d = WedgeDetector(config)
    assert d.feed("]", 0.0) == []
    assert d.tick(0.4) == []
    assert d.tick(0.51) == [Keys(("]",))]
    out = run(WedgeDetector(config), [("]", 0.0), ("x", 0.3)])  # not the prefix: typing
    assert scans(out) == [] and passed(out) == ["]", "x"]
    out = run(WedgeDetector(config), timed([*"]Q1data", "Enter"], 0.0, 0.1))
    assert out == [Scan("1data", (*"]Q1data", "Enter"))]


def test_prefixed_scan_interrupted_by_an_arrow_is_typing() -> None:
    config = WedgeConfig(prefix=("\x02",), suffix=("\x03",))
    out = run(WedgeDetector(config), [*timed("\x02abc", 0.0, 0.1), ("Left", 0.4)])
    assert out == [Keys((*"\x02abc", "Left"))]


def test_suffix_only_ends_a_fast_burst() -> None:
    config = WedgeConfig(suffix=("\x03",))
    out = run(WedgeDetector(config), timed("ABCDEFG\x03", 0.0, 0.003))
    assert out == [Scan("ABCDEFG", tuple("ABCDEFG\x03"))]


def test_suffix_with_enter() -> None:
    config = WedgeConfig(suffix=("#", "Enter"))
    out = run(WedgeDetector(config), timed([*"ABCDEFG#", "Enter"], 0.0, 0.003))
    assert out == [Scan("ABCDEFG", (*"ABCDEFG#", "Enter"))]


def test_an_endless_fast_stream_is_not_held_forever() -> None:
    d = WedgeDetector(WedgeConfig(max_length=100))
    out = run(d, timed("ab" * 200, 0.0, 0.001), tick_each=False)
    assert scans(out) == [] and flat(out) == list("ab" * 200)
    assert max(len(o.keys) for o in out) <= 101


# --- properties ---------------------------------------------------------------------------

slow_gaps = st.floats(min_value=GAP + 0.001, max_value=2.0)
any_key = st.sampled_from(list(CHARS) + NAMED)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(any_key, slow_gaps), max_size=40))
def test_slow_typing_passes_through_unchanged(keys: list[tuple[str, float]]) -> None:
    d = WedgeDetector()
    at, out = 0.0, []
    for key, gap in keys:
        at += gap
        out += d.feed(key, at)
        if (deadline := d.deadline()) is not None:  # the UI's timer fires at the deadline
            out += d.tick(deadline + 1e-6)
            assert d.held == ()  # released in at most max_gap
    assert all(isinstance(o, Keys) for o in out)
    assert flat(out) == [k for k, _ in keys]


@settings(max_examples=300, deadline=None)
@given(before=st.lists(st.tuples(any_key, slow_gaps), max_size=10),
       burst=st.text(alphabet=CHARS, min_size=6, max_size=60).filter(lambda t: len(set(t)) > 1),
       burst_gap=st.floats(min_value=0.0005, max_value=0.008),
       lead=st.floats(min_value=GAP + 0.001, max_value=1.0),
       terminator=st.sampled_from(["Enter", "Tab"]),
       after=st.lists(st.tuples(any_key, slow_gaps), max_size=10))
def test_fast_burst_with_terminator_is_one_scan(before: list[tuple[str, float]], burst: str,
                                                burst_gap: float, lead: float, terminator: str,
                                                after: list[tuple[str, float]]) -> None:
    events, at = [], 0.0
    for key, gap in before:
        at += gap
        events.append((key, at))
    at += lead
    events += timed([*burst, terminator], at, burst_gap)
    at = events[-1][1]
    for key, gap in after:
        at += gap
        events.append((key, at))
    out = run(WedgeDetector(), events)
    assert scans(out) == [burst]
    i = next(n for n, o in enumerate(out) if isinstance(o, Scan))
    assert passed(out[:i]) == [k for k, _ in before]
    assert passed(out[i + 1:]) == [k for k, _ in after]


configs = st.builds(
    WedgeConfig,
    prefix=st.sampled_from([(), ("\x02",), ("]", "Q")]),
    suffix=st.sampled_from([(), ("\x03",), ("#", "Enter")]),
    require_terminator=st.booleans(), timing=st.booleans(),
    min_length=st.integers(min_value=1, max_value=8))


@settings(max_examples=500, deadline=None)
@given(config=configs,
       keys=st.lists(st.tuples(st.sampled_from([*"ab]Q#\x02\x03", *NAMED]),
                               st.floats(min_value=0.0, max_value=0.7)), max_size=50),
       tick_each=st.booleans())
def test_nothing_is_ever_lost_or_reordered(config: WedgeConfig, keys: list[tuple[str, float]],
                                           tick_each: bool) -> None:
    """Whatever the timing and configuration, every key comes out exactly once, in order —
    passed through or inside a scan."""
    events, at = [], 0.0
    for key, gap in keys:
        at += gap
        events.append((key, at))
    out = run(WedgeDetector(config), events, tick_each)
    assert flat(out) == [k for k, _ in events]
    assert all(o.text for o in out if isinstance(o, Scan))
    assert all(o.keys for o in out)


@settings(max_examples=200, deadline=None)
@given(typed=st.text(alphabet=CHARS, min_size=1, max_size=5),
       burst=st.text(alphabet=CHARS, min_size=6, max_size=40).filter(lambda t: len(set(t)) > 1),
       burst_gap=st.floats(min_value=0.0005, max_value=0.002),
       lead=st.floats(min_value=0.012, max_value=GAP))
def test_scan_right_after_a_typed_key(typed: str, burst: str, burst_gap: float,
                                      lead: float) -> None:
    """A scan that starts less than `max_gap` after a person's key: the key is still theirs."""
    events = timed(typed, 0.0, 0.2)
    events += timed([*burst, "Enter"], events[-1][1] + lead, burst_gap)
    out = run(WedgeDetector(), events)
    assert passed(out) == list(typed) and scans(out) == [burst]
