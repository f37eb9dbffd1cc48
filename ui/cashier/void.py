"""Voiding a recent redemption: pick it from the open shift's list, a supervisor approves.

The list is read on the store worker (`Terminal.voidable`); the void itself runs as an
`Operation`, so the supervisor's id and PIN are asked by the usual dialog and a wrong PIN is
asked again. GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from terminal.services import Voidable
from ui import present


class VoidDialog(QDialog):
    """Lists `rows`; `chosen(entry_id)` is called with the selected redemption on OK."""

    def __init__(self, parent: QWidget, rows: list[Voidable], chosen: Callable[[str], None]
                 ) -> None:
        super().__init__(parent)
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.setWindowTitle(self.tr("Void a redemption"))
        self._chosen = chosen
        self.list = QListWidget()
        for row in rows:
            item = QListWidgetItem(f"#{row.seq}  {row.at.astimezone():%H:%M:%S}  {row.card}  "
                                   f"{present.money(row.amount, row.currency)}")
            item.setData(Qt.ItemDataRole.UserRole, row.entry_id)
            self.list.addItem(item)
        if rows:
            self.list.setCurrentRow(0)
        self.list.itemActivated.connect(lambda _item: self.accept())
        note = QLabel(self.tr("Choose the redemption to reverse; a supervisor approves it.")
                      if rows else self.tr("Nothing to void: no recent redemption in this shift."))
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addWidget(self.list)
        layout.addWidget(buttons)
        self.accepted.connect(self._accepted)
        self.resize(560, 360)

    def _accepted(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self._chosen(str(item.data(Qt.ItemDataRole.UserRole)))
