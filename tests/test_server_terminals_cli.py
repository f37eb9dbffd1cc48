"""`cardpos server terminals list|revoke`: what an administrator does about a lost or stolen
till — list the terminals, revoke one, and its credential is refused from then on."""

from __future__ import annotations

import json

import pytest

from tests.server_fixtures import Api
from tests.server_support import run_cli


def test_list_then_revoke_refuses_the_terminal(api: Api, db_url: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    headers = api.enrol("TILL-9", branch="north")
    api.enrol("TILL-10", branch="south")
    assert api.client.get("/v1/pull", params={"cursor": 0}, headers=headers).status_code == 200
    capsys.readouterr()
    assert run_cli("server", "terminals", "list", "--db", db_url, "--json") == 0
    listed = {t["id"]: t for t in json.loads(capsys.readouterr().out)["terminals"]}
    assert set(listed) == {"TILL-9", "TILL-10"}
    assert (listed["TILL-9"]["branch"], listed["TILL-9"]["revoked"]) == ("north", False)
    assert run_cli("server", "terminals", "revoke", "--db", db_url, "TILL-9") == 0
    assert "TILL-9 revoked" in capsys.readouterr().out
    refused = api.client.get("/v1/pull", params={"cursor": 0}, headers=headers)
    assert refused.status_code in (401, 403)
    assert run_cli("server", "terminals", "list", "--db", db_url) == 0
    text = capsys.readouterr().out
    assert any(line.startswith("TILL-9") and " yes " in line for line in text.splitlines())


def test_revoking_an_unknown_terminal_says_so(api: Api, db_url: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("server", "terminals", "revoke", "--db", db_url, "NOPE") == 2
    assert "No terminal NOPE is known to this server." in capsys.readouterr().err
