"""Languages of the windows: Qt's translation tools for the UI's own words, the core's catalogue
(terminal/messages.py) for reason and error codes.

The UI's strings are marked with `self.tr(...)` in each widget class (the class name is the
context); `python -m ui.linguist update` runs Qt's lupdate over ui/ into
ui/translations/cardpos_zh_CN.ts, a translator fills it in (Qt Linguist or by hand), and
`python -m ui.linguist release` builds the .qm this module loads. English is the source
language: its file holds only the plural forms.

Switching at runtime: `Language.set(lang)` swaps the installed QTranslator; Qt then sends every
widget a LanguageChange event, on which each of our widgets calls its `retranslate()`; the
`changed` signal tells the parts that show core messages to render them again. GUI thread only.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QCoreApplication, QLibraryInfo, QLocale, QObject, QTranslator, Signal

from terminal.messages import LANGUAGES

TRANSLATIONS = Path(__file__).with_name("translations")
#: What the language button shows: each language in its own words.
NATIVE_NAMES = {"en": "English", "zh_CN": "中文"}


def qm_path(lang: str) -> Path:
    return TRANSLATIONS / f"cardpos_{lang}.qm"


class Language(QObject):
    """The window language; `changed(lang)` after a switch."""

    changed = Signal(str)

    def __init__(self, lang: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lang = "en"
        self._translators: list[QTranslator] = []
        self.set(lang)

    @property
    def lang(self) -> str:
        return self._lang

    def set(self, lang: str) -> None:
        """Install `lang`'s translations (ours and Qt's own, for standard buttons)."""
        if lang not in LANGUAGES:
            raise ValueError(f"unsupported language {lang!r}")
        app = QCoreApplication.instance()
        for old in self._translators:
            QCoreApplication.removeTranslator(old)
        self._translators = []
        if app is not None:
            ours = QTranslator(self)  # for English: its plural forms only
            if not ours.load(str(qm_path(lang))):
                raise FileNotFoundError(f"translations missing: {qm_path(lang)}")
            qt_own = QTranslator(self)
            if qt_own.load(f"qtbase_{lang}",
                           QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)):
                self._translators.append(qt_own)
            self._translators.append(ours)
            for translator in self._translators:
                QCoreApplication.installTranslator(translator)
        QLocale.setDefault(QLocale(lang))
        changed = lang != self._lang
        self._lang = lang
        if changed:
            self.changed.emit(lang)

    def next(self) -> str:
        """The language after the current one (the language button cycles)."""
        i = LANGUAGES.index(self._lang)
        return LANGUAGES[(i + 1) % len(LANGUAGES)]
