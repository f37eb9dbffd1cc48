"""`cardpos devices ...` and `cardpos scan-image` through the real CLI, and the registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cardpos.cli import main
from drivers import registry
from drivers.tag_responder import TagResponder, ndef_message
from terminal import tokens
from terminal.errors import BadInput

UID = bytes.fromhex("04A1B2C3D4E5F6")
CARDPOS = str(Path(sys.executable).parent / "cardpos")


def signed_token() -> bytes:
    payload = tokens.TokenPayload("issuer-1", "6280001234567890", ("fuel",), 1_790_000_000, None)
    return tokens.sign_token(payload, Ed25519PrivateKey.generate())


def test_devices_list_names_every_adapter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "list", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["devices"]
    names = {d["name"] for d in found if d["kind"] in ("reader", "camera", "decoder", "printer")}
    assert {"pcsc (pyscard)", "nfcpy", "camera (opencv-python-headless)", "zxing-cpp",
            "pyzbar", "escpos (python-escpos)"} <= names
    assert all(isinstance(d["ok"], bool) for d in found)


def test_watch_prints_the_card_of_a_real_tap_over_nfcpy() -> None:
    """The whole chain: an emulated Type 4 tag on nfcpy's udp link, the nfcpy adapter chosen
    by its spec string, and the CLI printing the event as JSON, then exiting (--once)."""
    token = signed_token()
    with TagResponder("type4", UID, ndef_message(token)) as tag:
        tag.present()
        run = subprocess.run(
            [CARDPOS, "devices", "watch", "--reader", f"nfcpy:{tag.path}", "--once", "--json",
             "--timeout", "30"], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    cards = [json.loads(line) for line in run.stdout.splitlines()
             if json.loads(line)["kind"] == "card"]
    assert cards == [{"kind": "card", "reader": cards[0]["reader"], "uid": UID.hex().upper(),
                      "token": tokens.to_qr_text(token)}]


def test_watch_without_a_card_times_out_as_declined(capsys: pytest.CaptureFixture[str]) -> None:
    with TagResponder("type2", UID) as tag:
        code = main(["devices", "watch", "--reader", f"nfcpy:{tag.path}", "--once",
                     "--timeout", "1.5"])
    assert code == 1


def test_bad_specs_are_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "watch", "--reader", "floppy:0", "--once"]) == 2
    assert "floppy:0" in capsys.readouterr().err
    with pytest.raises(BadInput) as err:
        registry.open_printer("laser:1")
    assert err.value.code == "bad_device_spec"
    assert registry.split_spec("pcsc:Virtual PCD 00 00") == ("pcsc", "Virtual PCD 00 00")


def test_emulate_card_refuses_a_malformed_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "emulate-card", "--uid", "04A1B2C3", "--token", "CP1:??"]) == 2
    assert "cannot be read" in capsys.readouterr().err


def test_scan_image_reports_each_file_and_exits_0(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    text = tokens.to_qr_text(signed_token())
    good = tmp_path / "code.png"
    segno.make_qr(text, error="m").save(str(good), scale=6, border=4)
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image", encoding="utf-8")
    assert main(["scan-image", str(good), str(bad), str(tmp_path / "gone.png"), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert len(results) == 3
    assert results[0]["ok"] and [c["text"] for c in results[0]["codes"]] == [text]
    assert not results[1]["ok"] and not results[2]["ok"]
    assert all(r.get("error") for r in results[1:])
