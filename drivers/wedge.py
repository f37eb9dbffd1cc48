"""Tell a keyboard-wedge barcode/QR scanner from a person typing, from key events alone.

A wedge scanner is a USB keyboard: it "types" what it read, a character every few milliseconds,
and usually ends with Enter or Tab. A person types a character every 80-300 ms. The UI feeds
every key event to a `WedgeDetector` (in one Qt event filter) and gets back, in order, either
`Keys` — deliver these to the focused widget — or `Scan` — this burst was the scanner: text.

To decide, the detector holds back the keys of a possible burst; keys held back are released in
their order as soon as it is clear they were typed: the next key comes too late, a key that no
scanner sends (an arrow, Backspace) arrives, or `tick(now)` finds the gap too long. So a person's
keystrokes are never lost or reordered, only delayed by at most `max_gap` (30 ms by default). The
UI calls `tick()` from a timer set to `deadline()`, so nothing waits for another key.

Two ways to recognise a scan (both can be on):
- timing: at least `min_length` characters, each within `max_gap` of the one before, ended by a
  terminator (Enter/Tab) — or, with `require_terminator=False`, by silence. A burst of one repeated
  character is a held-down key (auto-repeat), not a scan.
- prefix/suffix: scanners can be configured to send fixed characters before and after the data
  (e.g. STX ... ETX). A scan is `prefix + data + suffix` (or `prefix + data + terminator` when no
  suffix is set), whatever the timing, within `prefix_timeout` between keys.

A scan that starts while a person is typing: the person's keys before the burst are released as
typing when the burst's first key comes late enough (more than `max_gap`, or clearly slower than the
burst's own rhythm: see `lead_ratio`). A key a person types *during* a scan's 50-100 ms cannot be
told apart and becomes part of it. The scanner's keyboard layout must match the system's.

Keys are strings: a one-character string for a key that produces text, a name for the others —
"Enter", "Tab", "Backspace", "Escape", "Left", ... (the UI maps Qt keys to these). Times are
seconds on one clock (time.monotonic() when the event arrives). Not thread-safe: one thread (the
GUI thread) feeds it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from itertools import pairwise

TERMINATORS = frozenset({"Enter", "Return", "Tab", "\r", "\n", "\t"})
_AS_TEXT = {"Enter": "\n", "Return": "\n", "Tab": "\t", "\r": "\n"}


@dataclass(frozen=True)
class WedgeConfig:
    """The heuristics' parameters (docs/devices.md explains how to choose them)."""

    max_gap: float = 0.030  # longest pause between a scanner's keys, seconds
    min_length: int = 6  # fewest characters (before the terminator) that make a timed scan
    terminators: frozenset[str] = TERMINATORS
    require_terminator: bool = True  # False: a fast burst ended by silence is a scan too
    timing: bool = True  # False: only prefixed input is a scan
    prefix: tuple[str, ...] = ()  # keys the scanner sends first, e.g. ("\x02",)
    suffix: tuple[str, ...] = ()  # keys it sends last, e.g. ("\x03",) or ("]", "Enter")
    prefix_timeout: float = 0.5  # longest pause inside a prefixed scan
    lead_ratio: float = 4.0  # a first key this many times slower than the burst is typing...
    lead_floor: float = 0.010  # ...if also slower than this (seconds)
    reject_repeats: bool = True  # one character repeated = a held-down key
    max_length: int = 4096  # longer bursts are released as typing (nothing is held forever)


@dataclass(frozen=True)
class Keys:
    """Deliver these keys to the focused widget, in this order: they were typed."""

    keys: tuple[str, ...]


@dataclass(frozen=True)
class Scan:
    """The scanner read `text`; `keys` are the key events it consumed (prefix, suffix and
    terminator included), so nothing of the input is unaccounted for."""

    text: str
    keys: tuple[str, ...]


Output = Keys | Scan


@dataclass
class _Held:
    key: str
    at: float


@dataclass
class WedgeDetector:
    """Feed it key events; it answers with `Keys` to pass through and `Scan`s."""

    config: WedgeConfig = field(default_factory=WedgeConfig)
    _held: list[_Held] = field(default_factory=list)
    _mode: str = "idle"  # idle | burst | prefix (matching the prefix) | prefixed (in a scan)

    @property
    def held(self) -> tuple[str, ...]:
        """The keys held back right now (for tests and the UI's debugging)."""
        return tuple(h.key for h in self._held)

    def deadline(self) -> float | None:
        """When `tick()` may release held keys: call it then (None: nothing is held)."""
        if not self._held:
            return None
        last = self._held[-1].at
        if self._mode == "burst":
            return last + self.config.max_gap
        return last + self.config.prefix_timeout

    def feed(self, key: str, at: float) -> list[Output]:
        """One key event at time `at`; returns what to do, in order (often nothing yet)."""
        out = self.tick(at)
        self._process(key, at, out)
        return _merge(out)

    def tick(self, now: float) -> list[Output]:
        """Release (or recognise) what is held if the pause since the last key is too long."""
        out: list[Output] = []
        deadline = self.deadline()
        if deadline is None or now <= deadline:
            return out
        if self._mode == "burst" and not self.config.require_terminator:
            self._end_burst(None, out)
        else:
            self._release(out)
        return _merge(out)

    def flush(self) -> list[Output]:
        """Release everything held as typing (focus moved, window closed)."""
        out: list[Output] = []
        self._release(out)
        return _merge(out)

    # --- the state machine ------------------------------------------------------------------

    def _is_char(self, key: str) -> bool:
        return len(key) == 1 and key not in self.config.terminators

    def _process(self, key: str, at: float, out: list[Output]) -> None:
        cfg = self.config
        if self._mode == "idle":
            if cfg.prefix and key == cfg.prefix[0]:
                self._hold(key, at, "prefixed" if len(cfg.prefix) == 1 else "prefix")
            elif cfg.timing and self._is_char(key):
                self._hold(key, at, "burst")
            else:
                out.append(Keys((key,)))
        elif self._mode == "prefix":
            n = len(self._held)
            if key == cfg.prefix[n]:
                self._hold(key, at, "prefixed" if n + 1 == len(cfg.prefix) else "prefix")
            elif cfg.timing and self._is_char(key) and self._fast(at):
                self._mode = "burst"  # not the prefix after all; maybe still a fast burst
                self._process(key, at, out)
            else:
                self._release(out)
                self._process(key, at, out)
        elif self._mode == "prefixed":
            self._in_prefixed(key, at, out)
        else:
            self._in_burst(key, at, out)

    def _in_prefixed(self, key: str, at: float, out: list[Output]) -> None:
        cfg = self.config
        if cfg.suffix:
            if not self._is_char(key) and key not in cfg.terminators and key not in cfg.suffix:
                self._release(out)  # an arrow or Backspace: a person after all
                out.append(Keys((key,)))
                return
            self._hold(key, at, "prefixed")
            body = self.held[len(cfg.prefix):]
            if len(body) > len(cfg.suffix) and body[-len(cfg.suffix):] == cfg.suffix:
                self._scan(body[:-len(cfg.suffix)], out)
        elif key in cfg.terminators:
            body = self.held[len(cfg.prefix):]
            if body:
                self._hold(key, at, "prefixed")
                self._scan(body, out)
            else:
                self._release(out)
                out.append(Keys((key,)))
        elif self._is_char(key):
            self._hold(key, at, "prefixed")
        else:
            self._release(out)
            out.append(Keys((key,)))
        if len(self._held) > cfg.max_length:
            self._release(out)

    def _in_burst(self, key: str, at: float, out: list[Output]) -> None:
        cfg = self.config
        if not (self._is_char(key) or key in cfg.terminators or key in cfg.suffix):
            self._release(out)  # an arrow, Backspace, ...: no scanner sends those
            out.append(Keys((key,)))
            return
        self._hold(key, at, "burst")
        if cfg.suffix and self.held[-len(cfg.suffix):] == cfg.suffix:
            self._end_burst(len(cfg.suffix), out)
        elif key in cfg.terminators:
            self._end_burst(1, out)
        elif not self._is_char(key) or len(self._held) > cfg.max_length:
            self._release(out)  # a suffix key out of place, or an endless stream

    def _end_burst(self, tail: int | None, out: list[Output]) -> None:
        """Decide a burst: held keys, the last `tail` of which end it (None: ended by silence).

        Leading keys clearly slower than the burst are a person's and are released first."""
        cfg = self.config
        held = self._held
        body_end = len(held) - (tail or 0)
        times = [h.at for h in held]
        start = 0
        while body_end - start > cfg.min_length:
            rest = [b - a for a, b in pairwise(times[start + 1:])]
            first = times[start + 1] - times[start]
            if not rest or first <= max(cfg.lead_ratio * statistics.median(rest), cfg.lead_floor):
                break
            start += 1
        chars = [h.key for h in held[start:body_end]]
        if len(chars) < cfg.min_length or not all(map(self._is_char, chars)) or (
                cfg.reject_repeats and len(set(chars)) == 1):
            self._release(out)
            return
        if start:
            out.append(Keys(tuple(h.key for h in held[:start])))
        self._held = held[start:]
        self._scan(tuple(chars), out)

    def _fast(self, at: float) -> bool:
        """True if the held keys and a key at `at` all came within `max_gap` of each other."""
        times = [h.at for h in self._held] + [at]
        return all(b - a <= self.config.max_gap for a, b in pairwise(times))

    def _hold(self, key: str, at: float, mode: str) -> None:
        self._held.append(_Held(key, at))
        self._mode = mode

    def _scan(self, body: tuple[str, ...], out: list[Output]) -> None:
        out.append(Scan("".join(_AS_TEXT.get(k, k) for k in body), self.held))
        self._held = []
        self._mode = "idle"

    def _release(self, out: list[Output]) -> None:
        if self._held:
            out.append(Keys(self.held))
        self._held = []
        self._mode = "idle"


def _merge(out: list[Output]) -> list[Output]:
    """Join neighbouring `Keys` so the caller gets the fewest, still ordered, outputs."""
    merged: list[Output] = []
    for item in out:
        if isinstance(item, Keys) and merged and isinstance(merged[-1], Keys):
            merged[-1] = Keys(merged[-1].keys + item.keys)
        else:
            merged.append(item)
    return merged
