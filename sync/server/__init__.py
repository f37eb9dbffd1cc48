"""The reference central server (issue 4). This first step is its data layer, without HTTP:

- `schema`: the tables (SQLAlchemy Core); `db`: engines and `migrate` (Alembic, in code);
- `ledger`: `apply_push` (exactly-once, chain-verified journal entries posted to the ledger),
  balances from the ledger and the pull cursor's change log;
- `issuer`: card import, `card_show`, freeze / report lost / unfreeze;
- `terminals`: registering and revoking terminals (enrolment with codes comes with the API).

docs/server.md describes the schema and the rules.
"""
