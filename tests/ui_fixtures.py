"""Fixtures for the Qt tests: a seeded demo terminal run as a `Station` with simulated devices,
and the `UiContext` over it. The windows run offscreen (QT_QPA_PLATFORM=offscreen, set in
tests/conftest.py before Qt loads).

Seeding hashes PINs (slow on purpose), so one seeded template is copied for each test.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cardpos.demo import CASHIER, CASHIER_PIN, DemoCard, Seeded, seed
from cardpos.station import Station, StationConfig
from drivers.sim import SimCamera, SimPrinter, SimReader

WAIT_MS = 10_000


@pytest.fixture(scope="session")
def ui_template(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    return seed(tmp_path_factory.mktemp("ui-template") / "t")


@pytest.fixture
def ui_seeded(ui_template: Seeded, tmp_path: Path) -> Seeded:
    data = tmp_path / "t"
    shutil.copytree(ui_template.data, data)
    return dataclasses.replace(ui_template, data=data)


@pytest.fixture
def demo_cards(ui_seeded: Seeded) -> dict[str, DemoCard]:
    names = ("fuel", "phone", "pin_card", "expiring", "frozen", "lost", "gift")
    return dict(zip(names, ui_seeded.cards, strict=True))


@dataclasses.dataclass
class Sims:
    """The station's simulated devices, typed for the tests."""

    reader: SimReader
    camera: SimCamera
    printer: SimPrinter


@pytest.fixture
def station(ui_seeded: Seeded) -> Iterator[Station]:
    """The seeded terminal with sim reader, camera and printer, no voice, not enrolled."""
    st = Station.open(StationConfig(ui_seeded.data, readers=("sim",), cameras=("sim",),
                                    printer="sim", voice=None))
    yield st
    st.stop()  # idempotent: the context may have stopped it already


@pytest.fixture
def sims(station: Station) -> Sims:
    reader, camera = station.readers[0], station.cameras[0]
    assert isinstance(reader, SimReader) and isinstance(camera, SimCamera)
    assert station.printer is not None and isinstance(station.printer.printer, SimPrinter)
    return Sims(reader, camera, station.printer.printer)


@pytest.fixture
def ctx(qapp: Any, station: Station) -> Iterator[Any]:
    """The UI context over `station`, started; stopped after the test."""
    from ui.context import UiContext
    from ui.i18n import Language

    context = UiContext(station, Language("en"), station.limits())
    context.start()
    yield context
    context.language.set("en")
    context.stop()


def open_shift(station: Station) -> str:
    decision, shift = station.shifts.open(CASHIER, CASHIER_PIN)
    assert decision.approved and shift is not None
    return shift
