"""Colours and style sheets: one place, so cashier and kiosk look like one product.

The kiosk's sheet is for strangers at arm's length: large type, touch targets of at least
48 px (MIN_TOUCH), dark text on light ground with a contrast ratio above 7:1 (WCAG AAA).
"""

from __future__ import annotations

OK = "#0b6b2e"       # approved: dark green (white text on it: 6.9:1)
BAD = "#a4161a"      # declined: dark red (white text: 7.5:1)
ASK = "#8a4b00"      # needs something (PIN, supervisor): dark amber (white text: 6.4:1)
INK = "#111111"
PAPER = "#ffffff"
MUTED = "#4a4a4a"
PANEL = "#f1f3f5"
ACCENT = "#0b4f8a"
MIN_TOUCH = 48

CASHIER = f"""
QWidget {{ font-size: 15px; color: {INK}; }}
QMainWindow, QDialog {{ background: {PAPER}; }}
QLabel#title {{ font-size: 22px; font-weight: 600; }}
QLabel#cardNumber {{ font-size: 26px; font-weight: 600; font-family: monospace; }}
QLabel#muted {{ color: {MUTED}; }}
QLabel#banner {{ font-size: 24px; font-weight: 700; color: white; padding: 10px;
                 border-radius: 6px; }}
QLabel#hint {{ font-size: 18px; color: {MUTED}; }}
QLabel#fkeys {{ color: {MUTED}; font-family: monospace; }}
QFrame#panel {{ background: {PANEL}; border-radius: 8px; }}
QLineEdit#entry {{ font-size: 28px; padding: 6px; font-family: monospace; }}
QPlainTextEdit#receipt {{ font-family: monospace; font-size: 13px; background: #fffdf5; }}
QPushButton {{ padding: 6px 14px; }}
QLabel#badge {{ color: white; padding: 2px 8px; border-radius: 4px; font-weight: 600; }}
"""

KIOSK = f"""
QWidget {{ font-size: 30px; color: {INK}; background: {PAPER}; }}
QLabel#title {{ font-size: 46px; font-weight: 700; }}
QLabel#huge {{ font-size: 64px; font-weight: 700; }}
QLabel#muted {{ color: {MUTED}; font-size: 26px; }}
QLabel#banner {{ font-size: 40px; font-weight: 700; color: white; padding: 18px;
                 border-radius: 10px; }}
QPushButton {{ min-height: {MIN_TOUCH * 2}px; min-width: {MIN_TOUCH * 3}px; font-size: 32px;
               font-weight: 600; border: 3px solid {INK}; border-radius: 12px;
               background: {PANEL}; padding: 8px 20px; }}
QPushButton#primary {{ background: {ACCENT}; color: white; border-color: {ACCENT}; }}
QPushButton:pressed {{ background: #d0d4d8; }}
QLineEdit {{ font-size: 40px; min-height: {MIN_TOUCH * 2}px; border: 3px solid {INK};
             border-radius: 10px; padding: 4px 12px; }}
"""


def banner_colour(outcome: str) -> str:
    """The banner colour for a decision outcome ("approve", "decline", "needs_pin", ...)."""
    return OK if outcome == "approve" else BAD if outcome == "decline" else ASK
