"""The self-service kiosk window: a card holder checks a card (and, where allowed, uses it)."""
