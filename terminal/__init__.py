"""The headless core of cardpos: model, rules, services, local store, journal and token formats.

It imports no Qt, no device library and no HTTP client (tests/test_layering.py checks this);
drivers/, sync/ and ui/ plug into it.
"""
