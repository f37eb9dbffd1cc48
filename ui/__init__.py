"""The Qt front ends (cashier and kiosk): the only package that imports PySide6."""
