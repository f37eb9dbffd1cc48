"""The server's HTTP API (sync/server/app.py) under a real uvicorn on 127.0.0.1, over SQLite and
a real PostgreSQL (every API test on both), with entries made by the terminal core; and the
`cardpos server ...` command handlers."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from cardpos import cli
from sync import protocol
from sync.server import auth, issuer, schema
from sync.server.app import create_app
from sync.server.db import head_revision, make_engine, utc_now
from sync.server.terminals import revoke_terminal
from terminal.errors import StateError
from tests.conftest import Till
from tests.server_fixtures import Api
from tests.server_support import (
    DATABASES,
    FUEL,
    FUEL_UID,
    PLAIN,
    ROWS,
    SLEEPER,
    empty,
    pending,
    run_cli,
    write_csv,
)
from tests.test_server_ledger import resign, some_work

ROOT = Path(__file__).resolve().parent.parent


def _typed(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["error"] == code and isinstance(body["message"], str) and body["message"]
    return body


def _balances(pulled: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {c["number"]: {p["name"]: p["balance"] for p in c["purses"]} for c in pulled["cards"]}


# -- service and enrolment -----------------------------------------------------------------------

def test_health(api: Api) -> None:
    r = api.client.get("/v1/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["database"] in ("sqlite", "postgresql")


def test_enrol_gives_a_credential_once_per_code(api: Api) -> None:
    code = auth.make_enrol_code(api.engine, "T1", "north")
    r = api.client.post("/v1/enrol", json={"code": code.lower(), "terminal_id": "T1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["terminal_id"], body["branch"]) == ("T1", "north")
    assert len(body["credential"]) >= 43
    with api.engine.connect() as conn:
        stored = conn.execute(sa.select(schema.terminals.c.credential_hash)).scalar_one()
        held = conn.execute(sa.select(schema.enrol_codes.c.code_hash)).scalar_one()
    assert body["credential"] not in stored and len(stored) == 64  # only a hash is kept
    assert code not in held
    again = api.client.post("/v1/enrol", json={"code": code, "terminal_id": "T1"})
    _typed(again, 403, "enrol_code_used")
    other = auth.make_enrol_code(api.engine, "T2")
    _typed(api.client.post("/v1/enrol", json={"code": other, "terminal_id": "T3"}),
           403, "enrol_code_invalid")
    _typed(api.client.post("/v1/enrol", json={"code": "NOPE-NOPE", "terminal_id": "T2"}),
           403, "enrol_code_invalid")
    old = auth.make_enrol_code(api.engine, "T2", now=utc_now() - timedelta(hours=25))
    _typed(api.client.post("/v1/enrol", json={"code": old, "terminal_id": "T2"}),
           403, "enrol_code_expired")
    # The credential works.
    headers = {"Authorization": f"Bearer {body['credential']}"}
    assert api.client.post("/v1/push", json={"entries": []}, headers=headers).status_code == 200


def test_re_enrolment_replaces_the_credential(api: Api) -> None:
    first = api.enrol("T1")
    second = api.enrol("T1", branch=None)
    _typed(api.client.post("/v1/push", json={"entries": []}, headers=first), 401,
           "unauthorized")
    r = api.client.post("/v1/push", json={"entries": []}, headers=second)
    assert r.status_code == 200
    with api.engine.connect() as conn:  # no branch on the code: the terminal keeps its own
        assert conn.execute(sa.select(schema.terminals.c.branch)).scalar_one() == "north"


def test_requests_need_a_valid_credential(api: Api) -> None:
    api.enrol("T1")
    empty: dict[str, Any] = {"entries": []}
    r = _typed(api.client.post("/v1/push", json=empty), 401, "unauthorized")
    assert r["message"]
    for header in ("Bearer", "Bearer wrong-credential", "Basic dXNlcjpwYXNz", "garbage"):
        r2 = api.client.post("/v1/push", json=empty, headers={"Authorization": header})
        _typed(r2, 401, "unauthorized")
        assert r2.headers["www-authenticate"] == "Bearer"
    _typed(api.client.get("/v1/pull", params={"cursor": 0}), 401, "unauthorized")


def test_a_revoked_terminal_is_refused(api: Api) -> None:
    headers = api.enrol("T1")
    revoke_terminal(api.engine, "T1")
    _typed(api.client.post("/v1/push", json={"entries": []}, headers=headers), 403,
           "terminal_revoked")
    _typed(api.client.get("/v1/pull", headers=headers), 403, "terminal_revoked")
    with pytest.raises(StateError) as err:  # a revoked terminal gets no new code either
        auth.make_enrol_code(api.engine, "T1")
    assert err.value.code == "terminal_revoked"


# -- push ------------------------------------------------------------------------------------------

def test_push_applies_real_entries_once(api: Api, t1: Till) -> None:
    headers = api.enrol("T1")
    batch = some_work(t1)
    r = api.client.post("/v1/push", json={"entries": batch}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["applied"] == [e["id"] for e in batch]
    assert (body["duplicates"], body["rejected"], body["gap"]) == ([], [], None)
    assert (body["last_seq"], body["last_hash"]) == (4, batch[-1]["hash"])
    again = api.client.post("/v1/push", json={"entries": batch}, headers=headers).json()
    assert (again["applied"], again["duplicates"]) == ([], [e["id"] for e in batch])
    assert {p.name: p.balance for p in issuer.card_show(api.engine, FUEL).purses} == {
        "fuel": 37_50, "general": 20_00}


def test_push_reports_a_gap_and_refuses_other_terminals_entries(api: Api, t1: Till,
                                                                t2: Till) -> None:
    headers = api.enrol("T1")
    api.enrol("T2")
    batch = some_work(t1)
    body = api.client.post("/v1/push", json={"entries": batch[2:]}, headers=headers).json()
    assert body["applied"] == [] and body["gap"] == {"from_seq": 1, "to_seq": 2}
    assert [r["reason"] for r in body["rejected"]] == ["sequence_gap", "after_rejected"]
    assert t2.terminal.redeem(FUEL_UID, 1_00).approved
    foreign = pending(t2)
    body = api.client.post("/v1/push", json={"entries": foreign}, headers=headers).json()
    assert body["applied"] == [] and body["rejected"][0]["reason"] == "wrong_terminal"


def test_push_of_absurd_amounts_and_overspends(api: Api, t1: Till, t2: Till) -> None:
    h1, h2 = api.enrol("T1"), api.enrol("T2")
    assert t1.terminal.redeem(FUEL_UID, 40_00, purse="fuel").approved
    assert t2.terminal.redeem(FUEL_UID, 30_00, purse="fuel").approved
    batch = pending(t1)
    forged = resign({**batch[1], "deltas": [{**batch[1]["deltas"][0], "amount": -10**18}]})
    body = api.client.post("/v1/push", json={"entries": [batch[0], forged, batch[1]]},
                           headers=h1).json()
    assert body["applied"] == [batch[0]["id"]]
    assert [(r["reason"], r["detail"].get("problem")) for r in body["rejected"]] == [
        ("malformed_entry", "amount_out_of_range"), ("after_rejected", None)]
    assert api.client.post("/v1/push", json={"entries": batch}, headers=h1).json()["applied"] \
        == [batch[1]["id"]]
    body = api.client.post("/v1/push", json={"entries": pending(t2)}, headers=h2).json()
    assert body["overspends"] == [{"entry": pending(t2)[-1]["id"], "card": FUEL,
                                   "purse": "fuel", "amount": 20_00, "currency": "EUR",
                                   "terminals": ["T1", "T2"]}]
    pulled = api.pull(h1, 0)
    assert _balances(pulled)[FUEL] == {"fuel": -20_00, "general": 20_00}
    assert pulled["denylist"] == [{"card": FUEL, "reason": "overspend", "listed": True}]


# -- pull ------------------------------------------------------------------------------------------

def test_pull_snapshot_then_deltas(api: Api, t1: Till) -> None:
    headers = api.enrol("T1")
    api.enrol("T2")
    assert api.client.post("/v1/push", json={"entries": some_work(t1)},
                           headers=headers).status_code == 200
    snap = api.pull(headers, 0)
    assert (snap["reset"], snap["more"]) == (True, False)
    assert _balances(snap) == {FUEL: {"fuel": 37_50, "general": 20_00},
                               PLAIN: {"general": 35_00}, SLEEPER: {"general": 10_00}}
    sleeper = next(c for c in snap["cards"] if c["number"] == SLEEPER)
    assert sleeper["status"] == "active" and sleeper["uid"] == "04A1B2C6"
    assert (snap["limits"], snap["prices"], snap["denylist"]) == (None, None, [])

    issuer.freeze(api.engine, PLAIN)
    delta = api.pull(headers, snap["cursor"])
    assert (delta["reset"], delta["more"]) == (False, False)
    assert [(c["number"], c["status"]) for c in delta["cards"]] == [(PLAIN, "frozen")]
    assert delta["cursor"] > snap["cursor"]
    idle = api.pull(headers, delta["cursor"])
    assert (idle["cards"], idle["reset"], idle["cursor"]) == ([], False, delta["cursor"])
    # A cursor the server never issued (another or a restored database): a full snapshot.
    ahead = api.pull(headers, delta["cursor"] + 100)
    assert ahead["reset"] and len(ahead["cards"]) == 3
    # The checksum covers the body.
    tampered = {**idle, "cursor": idle["cursor"] + 1}
    assert not protocol.verify_checksum(tampered)


def test_pull_pages(api: Api, tmp_path: Path) -> None:
    headers = api.enrol("T1")
    issuer.import_cards(api.engine, write_csv(
        tmp_path / "more.csv", "4539578763621486,,shopping,general,150.00,EUR,,active,2468"))
    pages, cursor = [], 0
    while True:
        page = api.pull(headers, cursor, limit=2)
        pages.append(page)
        cursor = page["cursor"]
        if not page["more"]:
            break
        assert len(pages) < 10
    assert [len(p["cards"]) for p in pages] == [2, 2]
    assert [p["reset"] for p in pages] == [True, False]
    numbers = [c["number"] for p in pages for c in p["cards"]]
    assert sorted(numbers) == sorted({FUEL, PLAIN, SLEEPER, "4539578763621486"})
    pinned = next(c for p in pages for c in p["cards"] if c["number"] == "4539578763621486")
    assert pinned["pin_hash"] and "2468" not in pinned["pin_hash"]


# -- bad input -------------------------------------------------------------------------------------

def test_bad_requests_get_typed_errors_never_500(api: Api) -> None:
    headers = api.enrol("T1")
    post = api.client.post
    jh = {**headers, "Content-Type": "application/json"}
    _typed(post("/v1/push", content=b"{not json", headers=jh), 400, "malformed_json")
    _typed(post("/v1/push", content=b"\xff\xfe", headers=jh), 400, "malformed_json")
    _typed(post("/v1/push", json={"entries": "x"}, headers=headers), 422, "invalid_request")
    _typed(post("/v1/push", json=[1, 2], headers=headers), 422, "invalid_request")
    _typed(post("/v1/push", json={"entries": [1]}, headers=headers), 422, "invalid_request")
    _typed(post("/v1/push", json={"entries": [], "x": 1}, headers=headers), 422,
           "invalid_request")
    _typed(post("/v1/push", json={"entries": [{}] * (protocol.MAX_PUSH_ENTRIES + 1)},
                headers=headers), 422, "invalid_request")
    _typed(post("/v1/enrol", json={"code": 5}), 422, "invalid_request")
    _typed(post("/v1/enrol", content=b"", headers={"Content-Type": "application/json"}),
           422, "invalid_request")
    for params in ({"cursor": -1}, {"cursor": "abc"}, {"cursor": 2**70}, {"limit": 0},
                   {"limit": protocol.MAX_PULL_LIMIT + 1}):
        _typed(api.client.get("/v1/pull", params=params, headers=headers), 422,
               "invalid_request")
    _typed(api.client.get("/v1/nowhere"), 404, "not_found")
    _typed(api.client.get("/v1/push", headers=headers), 405, "method_not_allowed")
    weird = [{"id": "x\x00", "seq": 1}, {"id": 1, "seq": 2**80, "deltas": "no"},
             {"v": 1, "card": "1" * 40}, {"deltas": [{"amount": 2**70}]}, {"hash": None}]
    for entry in weird:
        r = post("/v1/push", json={"entries": [entry]}, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["rejected"][0]["reason"] == "malformed_entry"


def test_openapi_file_is_up_to_date(tmp_path: Path) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'x.db'}")
    saved = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    assert saved == app.openapi(), "regenerate: python -m sync.server openapi docs/openapi.json"
    app.state.engine.dispose()


def test_openapi_is_served(api: Api) -> None:
    r = api.client.get("/openapi.json")
    assert r.status_code == 200 and "/v1/push" in r.json()["paths"]


# -- cardpos server ... ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", DATABASES)
def test_server_commands(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                         request: pytest.FixtureRequest) -> None:
    if kind == "postgresql":
        url = request.getfixturevalue("pg_url")
        engine = make_engine(url)
        empty(engine)
        engine.dispose()
    else:
        url = f"sqlite:///{tmp_path / 'deep' / 'server.sqlite3'}"  # the directory is made
    db = ("--db", url)
    assert run_cli("server", "migrate", *db, "--json") == 0
    assert json.loads(capsys.readouterr().out)["revision"] == head_revision()
    assert run_cli("server", "cards", "import", *db, str(write_csv(tmp_path / "c.csv", *ROWS))) == 0
    assert "Imported 3 cards with 4 purses" in capsys.readouterr().out
    assert run_cli("server", "card", "show", *db, FUEL, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["status"], [p["balance"] for p in shown["purses"]]) == ("active",
                                                                          [50_00, 20_00])
    assert run_cli("server", "card", "show", *db, FUEL) == 0
    text = capsys.readouterr().out
    assert "50.00" in text and FUEL not in text  # masked
    assert run_cli("server", "freeze", *db, FUEL, "--json") == 0
    assert json.loads(capsys.readouterr().out)["status"] == "frozen"
    assert run_cli("server", "unfreeze", *db, FUEL) == 0
    assert "is active" in capsys.readouterr().out
    assert run_cli("server", "report-lost", *db, FUEL) == 0
    assert run_cli("server", "unfreeze", *db, FUEL) == 2  # lost is final
    assert run_cli("server", "card", "show", *db, "79927398710") == 2  # bad check digit
    capsys.readouterr()
    assert run_cli("server", "enrol-code", *db, "--terminal-id", "T9", "--branch", "b1",
                   "--json") == 0
    made = json.loads(capsys.readouterr().out)
    assert (made["terminal_id"], made["branch"], made["valid_hours"]) == ("T9", "b1", 24)
    engine = make_engine(url)
    try:
        identity, _credential = auth.enrol(engine, made["code"], "T9")
        assert identity.branch == "b1"
    finally:
        engine.dispose()
    assert run_cli("server", "enrol-code", *db, "--terminal-id", "bad id!") == 2


def test_server_run_migrates_and_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    url = f"sqlite:///{tmp_path / 'run.sqlite3'}"
    assert run_cli("server", "run", "--db", url, "--port", "8799") == 0
    assert (served["host"], served["port"]) == ("127.0.0.1", 8799)
    assert served["app"].title == "cardpos server"
    served["app"].state.engine.dispose()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count())
                                .select_from(schema.enrol_codes)).scalar_one() == 0
    finally:
        engine.dispose()
    assert "Serving on http://127.0.0.1:8799" in capsys.readouterr().out


def test_default_db_is_a_sqlite_file_in_the_data_dir() -> None:
    args = cli.build_parser().parse_args(["server", "migrate"])
    assert args.db == f"sqlite:///{cli.default_data_dir() / 'server.sqlite3'}"
