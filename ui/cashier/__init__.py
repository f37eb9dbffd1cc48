"""The cashier window: login, sale screen, void and shift dialogs."""
