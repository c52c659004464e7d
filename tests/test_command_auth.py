"""Signed commands on the router itself: real Ed25519 keys, a real config parse, a real state store,
and handlers of our own interface that record what ran. Each attack of issue 16 point 1 is refused
with its fixed code, counted under it, and never reaches a handler."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from paho.mqtt.enums import CallbackAPIVersion

from gateway.commands.canonical import canonical_bytes, es_number
from gateway.commands.refusals import Code
from gateway.commands.router import LOCAL, CommandContext, CommandRouter, Rejected
from gateway.commands.signing import envelope, new_key, public_key_b64, sign
from gateway.config import parse_config
from gateway.core import ManualClock
from gateway.core.errors import ConfigError
from gateway.core.timesync import SettableSync
from gateway.storage.state import StateStore
from tests.support.broker import Mosquitto
from tests.support.configs import door_toml, meter_bus_toml

OFFICE, GUARD = new_key(), new_key()  # office: door_pulse on lobby; guard: ping and alarm_ack only


def config_toml(extra_commands: str = "", office_doors: str = '["lobby"]', per_minute: int = 120) -> str:
    devices = meter_bus_toml(1502, read=None) + door_toml("lobby", coil=2) + door_toml("garage", coil=3)
    return (
        textwrap.dedent("""
        [gateway]
        id = "gw-7"
        site = "north"
        """)
        + devices
        + textwrap.dedent(f"""
        [commands]
        allow = ["ping", "alarm_ack", "door_pulse"]
        max_per_minute = {per_minute}
        {extra_commands}

        [[commands.operators]]
        id = "office"
        public_key = "{public_key_b64(OFFICE)}"
        allow = ["ping", "door_pulse"]
        doors = {office_doors}

        [[commands.operators]]
        id = "night-guard"
        public_key = "{public_key_b64(GUARD)}"
        allow = ["ping", "alarm_ack"]
        """)
    )


class Rig:
    def __init__(
        self, tmp_path: Path, text: str | None = None, start_ms: int | None = None, persist: bool = True
    ) -> None:
        self.clock = ManualClock() if start_ms is None else ManualClock(start_ms)
        self.ran: list[tuple[str, dict[str, Any], CommandContext]] = []
        self.sync = SettableSync(True)
        self.results: list[dict[str, Any]] = []
        self.store = StateStore(tmp_path / "state.db") if persist else None
        config = parse_config((text or config_toml()).encode(), "test.toml").config
        handlers = {name: self._handler(name) for name in ("ping", "alarm_ack", "door_pulse")}
        self.router = CommandRouter.from_config(
            config.commands,
            "gw-7",
            "north",
            handlers,
            self.store,
            self.clock,
            self.results.append,
            self.sync,
        )

    def _handler(self, name: str) -> Callable[[dict[str, Any], CommandContext], Any]:
        async def handler(args: dict[str, Any], ctx: CommandContext) -> dict[str, Any]:
            if args.get("alarm_id") == "404":
                raise Rejected("unknown alarm: no open alarm has id 404")
            self.ran.append((name, args, ctx))
            return {"done": name}

        return handler

    def body(self, command: str, args: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {"gateway_id": "gw-7", "site": "north", "ts_ms": self.clock.time_ms()}
        fields.update(kw)
        return envelope(command, args, **fields)

    def send(self, doc: dict[str, Any] | bytes, origin: str = "mqtt") -> dict[str, Any] | None:
        payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        return asyncio.run(self.router.handle(payload, origin))


def signed_by(key: Ed25519PrivateKey, key_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    return sign(doc, key, key_id)


def test_signed_door_pulse_from_a_key_with_that_doors_role_runs(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    r = rig.send(signed_by(OFFICE, "office", rig.body("door_pulse", {"door": "lobby"})))
    assert r is not None and r["outcome"] == "ok" and r["by"] == "office", r
    assert [(name, args, ctx.by, ctx.origin) for name, args, ctx in rig.ran] == [
        ("door_pulse", {"door": "lobby"}, "office", "mqtt")
    ]
    snap = rig.router.report()
    assert snap.ok == 1 and snap.refusals == {} and snap.signatures_checked is True
    assert snap.per_key == {"office": {"ok": 1, "rejected": 0, "failed": 0, "dropped": 0}}


def _attacks(rig: Rig) -> dict[str, tuple[dict[str, Any], Code]]:
    def office(doc: dict[str, Any]) -> dict[str, Any]:
        return signed_by(OFFICE, "office", doc)

    def pulse(door: str = "lobby", **kw: Any) -> dict[str, Any]:
        return rig.body("door_pulse", {"door": door}, **kw)

    good = pulse()
    tampered = office(good)
    tampered["args"] = {"door": "garage"}
    swapped = signed_by(GUARD, "night-guard", good)
    swapped["key_id"] = "office"  # the guard's signature presented as the office's
    untargeted = {k: v for k, v in office(good).items() if k != "gateway_id"}
    claimed = signed_by(GUARD, "night-guard", {**rig.body("alarm_ack", {"alarm_id": "3"}), "by": "office"})
    replay = office(rig.body("ping"))
    rig.send(replay)  # the original: accepted
    now = rig.clock.time_ms()
    return {
        "another door": (office(pulse("garage")), Code.DOOR_NOT_ALLOWED),
        "another gateway": (office(pulse(gateway_id="gw-8")), Code.WRONG_GATEWAY),
        "another site": (office(pulse(site="south")), Code.WRONG_GATEWAY),
        "no target": (untargeted, Code.WRONG_GATEWAY),
        "key without the role": (signed_by(GUARD, "night-guard", good), Code.NOT_ALLOWED),
        "tampered args": (tampered, Code.BAD_SIGNATURE),
        "signature of another key": (swapped, Code.BAD_SIGNATURE),
        "unknown key": (signed_by(new_key(), "ghost", good), Code.UNKNOWN_KEY),
        "unsigned": (good, Code.UNSIGNED),
        "unsigned ping": (rig.body("ping"), Code.UNSIGNED),
        "replayed nonce": (replay, Code.REPLAYED),
        "expired ts": (office(pulse(ts_ms=now - 301_000)), Code.EXPIRED),
        "from the future": (office(rig.body("ping", ts_ms=now + 60_000)), Code.CLOCK_SKEW),
        "by claimed": (claimed, Code.MALFORMED),
        "garbage sig": ({**good, "key_id": "office", "sig": "AAAA"}, Code.BAD_SIGNATURE),
        "gateway not accepting it": (office(rig.body("outbox_stats")), Code.NOT_ALLOWED),
    }


@pytest.mark.parametrize(
    "attack",
    [
        "another door",
        "another gateway",
        "another site",
        "no target",
        "key without the role",
        "tampered args",
        "signature of another key",
        "unknown key",
        "unsigned",
        "unsigned ping",
        "replayed nonce",
        "expired ts",
        "from the future",
        "by claimed",
        "garbage sig",
        "gateway not accepting it",
    ],
)
def test_each_attack_is_refused_with_its_code_and_counted(tmp_path: Path, attack: str) -> None:
    rig = Rig(tmp_path)
    doc, code = _attacks(rig)[attack]
    before = len(rig.ran)
    r = rig.send(doc)
    assert r is not None and r["outcome"] == "rejected", r
    assert r["code"] == code.value and r["reason"].startswith(f"{code.value}: "), r
    assert r["correlation_id"] == doc["id"]
    assert len(rig.ran) == before  # nothing executed
    assert rig.router.report().refusals == {code.value: 1}
    assert rig.results[-1] == r


def test_by_is_the_verified_key_and_handler_refusals_keep_their_words(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    r = rig.send(signed_by(GUARD, "night-guard", rig.body("alarm_ack", {"alarm_id": "12"})))
    assert r is not None and r["outcome"] == "ok" and r["by"] == "night-guard"
    assert rig.ran[-1][2].by == "night-guard"
    r = rig.send(signed_by(GUARD, "night-guard", rig.body("alarm_ack", {"alarm_id": "404"})))
    assert (
        r is not None and r["code"] == "refused" and r["reason"] == "unknown alarm: no open alarm has id 404"
    )


def test_key_order_and_spacing_of_the_sender_do_not_matter(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    doc = signed_by(OFFICE, "office", rig.body("door_pulse", {"door": "lobby", "pulse_s": 2.0}))
    # Another language's encoder: reversed keys, spaces, 2.0 written as 2.0 (canonical form says 2).
    text = "{ " + ", ".join(f"{json.dumps(k)} : {json.dumps(v)}" for k, v in reversed(doc.items())) + " }"
    assert canonical_bytes(doc).count(b'"pulse_s":2}') == 1
    r = rig.send(text.encode())
    assert r is not None and r["outcome"] == "ok", r


def test_unsigned_ping_only_by_explicit_config(tmp_path: Path) -> None:
    rig = Rig(tmp_path, config_toml('unsigned = ["ping"]'))
    r = rig.send(rig.body("ping"))
    assert r is not None and r["outcome"] == "ok" and r["by"] == "unsigned"
    r = rig.send(rig.body("alarm_ack", {"alarm_id": "3"}))
    assert r is not None and r["code"] == "unsigned"
    with pytest.raises(ConfigError) as info:
        parse_config(config_toml('unsigned = ["alarm_ack"]').encode(), "test.toml")
    assert "commands.unsigned[0]" in str(info.value.problems[0])


def test_local_socket_is_unsigned_and_audited_local(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    body = {
        k: v for k, v in rig.body("alarm_ack", {"alarm_id": "5"}).items() if k not in ("gateway_id", "site")
    }
    r = rig.send(body, LOCAL)
    assert r is not None and r["outcome"] == "ok" and r["by"] == "local" and r["origin"] == "local"
    r = rig.send({**rig.body("alarm_ack", {"alarm_id": "6"}), "by": "warden-9"}, LOCAL)
    assert r is not None and r["by"] == "warden-9" and rig.ran[-1][2].origin == "local"


def test_sequential_alarm_ids_cannot_be_acked_without_the_role(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    for alarm_id in range(1, 5):  # the attack of issue 16: counting ids, unsigned, then by a door key
        assert rig.send(rig.body("alarm_ack", {"alarm_id": str(alarm_id)}))["code"] == "unsigned"  # type: ignore[index]
        doc = signed_by(OFFICE, "office", rig.body("alarm_ack", {"alarm_id": str(alarm_id)}))
        assert rig.send(doc)["code"] == "not_allowed"  # type: ignore[index]
    assert rig.ran == []


def test_500_refusals_make_bounded_keys_and_log_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig(tmp_path, config_toml(per_minute=100_000))
    caplog.set_level(logging.INFO, logger="lintel.commands")
    now = rig.clock.time_ms()
    for i in range(500):
        kind = i % 5
        if kind == 0:  # each "issued N s in the future" with another N: once a new counter key each
            doc = signed_by(OFFICE, "office", rig.body("ping", ts_ms=now + 31_000 + i * 1000))
        elif kind == 1:
            doc = signed_by(OFFICE, "office", rig.body("ping", ts_ms=now - 301_000 - i * 1000))
        elif kind == 2:
            doc = signed_by(new_key(), f"ghost-{i}", rig.body("ping"))
        elif kind == 3:
            doc = rig.body("door_pulse", {"door": f"door-{i}"})
        else:
            doc = signed_by(OFFICE, "office", rig.body("door_pulse", {"door": "lobby"}, gateway_id=f"gw-{i}"))
        rig.send(doc)
    snap = rig.router.report()
    assert snap.refusals == {
        "clock_skew": 100,
        "expired": 100,
        "unknown_key": 100,
        "unsigned": 100,
        "wrong_gateway": 100,
    }
    assert snap.rejected == 500 and len(rig.results) == 500
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 5 and rig.router.refusals.lines_logged == 5
    # After a quiet episode the next one logs again, saying how many were only counted.
    rig.clock.advance(301)
    rig.send(rig.body("ping"))
    last = [r for r in caplog.records if r.levelno >= logging.WARNING][-1].getMessage()
    assert "99 more were only counted in the previous episode" in last
    assert len(rig.router.report().refusals) == 5


def test_a_flood_from_one_sender_never_blocks_another(tmp_path: Path) -> None:
    rig = Rig(tmp_path, config_toml(per_minute=10))
    answers = [rig.send(signed_by(GUARD, "night-guard", rig.body("ping"))) for _ in range(30)]
    unsigned = [rig.send(rig.body("door_pulse", {"door": "lobby"})) for _ in range(30)]
    # The guard: 10 run, the 11th is answered rate_limited, the rest dropped unanswered.
    assert [a["outcome"] if a else None for a in answers] == ["ok"] * 10 + ["rejected"] + [None] * 19
    assert answers[10]["code"] == "rate_limited"  # type: ignore[index]
    # Unverified senders share one budget of their own: 10 refused with their reason, then one rate_limited.
    assert [u["code"] if u else None for u in unsigned] == ["unsigned"] * 10 + ["rate_limited"] + [None] * 19
    # The office was never touched by either flood.
    r = rig.send(signed_by(OFFICE, "office", rig.body("door_pulse", {"door": "lobby"})))
    assert r is not None and r["outcome"] == "ok"
    snap = rig.router.report()
    assert snap.dropped == 38 and snap.per_key["night-guard"]["dropped"] == 19
    # The budget refills with time: 6 s give the guard one command (10 a minute).
    rig.clock.advance(6)
    r = rig.send(signed_by(GUARD, "night-guard", rig.body("ping")))
    assert r is not None and r["outcome"] == "ok"


def test_operator_config_errors_name_key_value_and_fix() -> None:
    def problems(text: str) -> list[str]:
        with pytest.raises(ConfigError) as info:
            parse_config(text.encode(), "test.toml")
        return [str(p) for p in info.value.problems]

    bad_key = config_toml().replace(public_key_b64(GUARD), "bm90IGEga2V5")
    (found,) = problems(bad_key)
    assert found.startswith("commands.operators[1].public_key: not an Ed25519 public key: 9 bytes")
    assert "44 characters of base64" in found
    (found,) = problems(config_toml(office_doors='["lobby", "cellar"]'))
    assert found.startswith('commands.operators[0].doors[1]: unknown door (got "cellar")'), found
    (found,) = problems(config_toml(office_doors="[]"))
    assert found.startswith("commands.operators[0].doors: door_pulse is allowed but no door is"), found
    twice = config_toml().replace(public_key_b64(GUARD), public_key_b64(OFFICE))
    (found,) = problems(twice)
    assert found.startswith("commands.operators[1].public_key: the same public key as operator office"), found
    wider = config_toml().replace('allow = ["ping", "alarm_ack"]\n', 'allow = ["ping", "reload_config"]\n')
    (found,) = problems(wider)
    assert found.startswith("commands.operators[1].allow[1]: the key may sign a command this gateway"), found
    # A PEM public key is accepted as well as base64.
    pem = GUARD.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    as_pem = config_toml().replace(f'"{public_key_b64(GUARD)}"', f'"""{pem}"""')
    assert parse_config(as_pem.encode(), "test.toml").config.commands.operators[1].id == "night-guard"


def test_canonical_numbers_follow_ecmascript() -> None:
    # RFC 8785 appendix B values and the edges of the ECMAScript format.
    cases = {
        0.0: "0",
        5.0: "5",
        0.5: "0.5",
        1e-7: "1e-7",
        1.5e-7: "1.5e-7",
        0.000001: "0.000001",
        1e20: "100000000000000000000",
        1e21: "1e+21",
        333333333.3333333: "333333333.3333333",
        5e-324: "5e-324",
        1.7976931348623157e308: "1.7976931348623157e+308",
        -1.5e300: "-1.5e+300",
    }
    assert {x: es_number(x) for x in cases} == cases
    assert es_number(-0.0) == "0"
    assert canonical_bytes({"b": 1, "a": "é\n", "sig": "x", "\U0001f600": 1, "\ufb33": 2}) == (
        '{"a":"é\\n","b":1,"\U0001f600":1,"\ufb33":2}'.encode()
    )
    with pytest.raises(ValueError):
        canonical_bytes({"ts_ms": 2**60})


def test_lintel_keys_new_and_sign_make_commands_the_router_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli.main import main

    key_file = tmp_path / "door-desk.key"
    assert main(["keys", "new", "--id", "door-desk", "--out", str(key_file)]) == 0
    lines = capsys.readouterr().out
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert main(["keys", "new", "--id", "door-desk", "--out", str(key_file)]) == 1  # never overwritten
    capsys.readouterr()
    # The printed lines go into the config as they are, with the roles added.
    operator = lines.replace('allow = ["ping"]', 'allow = ["door_pulse"]\ndoors = ["garage"]')
    rig = Rig(tmp_path, config_toml() + "\n" + operator, start_ms=time.time_ns() // 1_000_000)
    argv = ["keys", "sign", "--key", str(key_file), "--gateway", "gw-7", "--site", "north"]
    assert main([*argv, "door_pulse", '{"door": "garage", "pulse_s": 1.5}']) == 0
    signed = json.loads(capsys.readouterr().out)
    assert signed["key_id"] == "door-desk" and signed["args"] == {"door": "garage", "pulse_s": 1.5}
    r = rig.send(signed)
    assert r is not None and r["outcome"] == "ok" and r["by"] == "door-desk", r
    assert main([*argv, "door_pulse", '{"door": "lobby"}']) == 0
    r = rig.send(json.loads(capsys.readouterr().out))
    assert r is not None and r["code"] == "door_not_allowed"
    assert main([*argv, "ping", "[1]"]) == 2
    assert "ARGS must be a JSON object" in capsys.readouterr().err


def test_lintel_keys_sign_publishes_and_prints_the_result(
    tmp_path: Path, broker: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through a real mosquitto to a responder running the router, as a gateway's command topic does."""
    from gateway.cli.main import main

    key_file = tmp_path / "office.key"
    assert main(["keys", "new", "--id", "office", "--out", str(key_file)]) == 0
    roles = 'allow = ["ping", "door_pulse"]\ndoors = ["*"]'
    operator = capsys.readouterr().out.replace('allow = ["ping"]', roles)
    text = config_toml().replace('id = "office"', 'id = "old-office"') + "\n" + operator
    # No state store: the router runs in paho's thread here, and SQLite connections stay in theirs.
    rig = Rig(tmp_path, text, start_ms=time.time_ns() // 1_000_000, persist=False)
    base = "lintel/north/gw-7/command"
    gateway = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fake-gw-7")
    ready = threading.Event()
    gateway.on_connect = lambda c, *_: (c.subscribe(base, qos=1), ready.set())

    def answer(client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        body = asyncio.run(rig.router.handle(msg.payload))
        client.publish(f"{base}/result", json.dumps(body), qos=1)

    gateway.on_message = answer
    gateway.connect("127.0.0.1", broker.port, 30)
    gateway.loop_start()
    try:
        assert ready.wait(10)
        argv = ["keys", "sign", "--key", str(key_file), "--gateway", "gw-7", "--site", "north"]
        publish = ["--publish", f"mqtt://127.0.0.1:{broker.port}", "--wait-s", "10"]
        assert main([*argv, *publish, "door_pulse", '{"door": "garage"}']) == 0
        sent, result = (json.loads(line) for line in capsys.readouterr().out.splitlines())
        assert result["correlation_id"] == sent["id"]
        assert result["outcome"] == "ok" and result["by"] == "office"
        assert [(name, ctx.by) for name, _, ctx in rig.ran] == [("door_pulse", "office")]
        # A refusal exits 1 and says why; no answer at all (nobody serves gw-8) exits 3.
        assert main([*argv, *publish, "alarm_ack", '{"alarm_id": "1"}']) == 1
        assert "not_allowed" in capsys.readouterr().err
        wrong = ["keys", "sign", "--key", str(key_file), "--gateway", "gw-8", "--site", "north"]
        assert main([*wrong, *publish[:2], "--wait-s", "0.5", "ping"]) == 3
        assert "no result within 0.5 s" in capsys.readouterr().err
    finally:
        gateway.disconnect()
        gateway.loop_stop()


def test_canonical_form_matches_an_independent_rfc8785_implementation() -> None:
    """A sender signing with any JCS library (here `rfc8785`) produces the bytes the gateway verifies."""
    import rfc8785
    from hypothesis import given, settings
    from hypothesis import strategies as st

    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**53) + 1, 2**53 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
    )
    values = st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.text(st.characters(exclude_categories=["Cs"]), max_size=6), inner, max_size=4
            )
        ),
        max_leaves=16,
    )

    @settings(max_examples=400, deadline=None, database=None)
    @given(st.dictionaries(st.text(max_size=6).filter(lambda k: k != "sig"), values, max_size=6))
    def same(doc: dict[str, Any]) -> None:
        assert canonical_bytes(doc) == rfc8785.dumps(doc)

    same()
    key = new_key()
    body = envelope("door_pulse", {"door": "lobby", "pulse_s": 2.5}, gateway_id="gw-7", site="north")
    doc = sign(body, key)
    unsigned = {k: v for k, v in doc.items() if k != "sig"}
    key.public_key().verify(base64.b64decode(doc["sig"]), rfc8785.dumps(unsigned))


def test_replay_guard_survives_a_restart_and_forgets_only_past_the_window(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    doc = signed_by(OFFICE, "office", rig.body("ping"))
    assert rig.send(doc)["outcome"] == "ok"  # type: ignore[index]
    rig.store.close()  # type: ignore[union-attr]
    again = Rig(tmp_path, start_ms=rig.clock.time_ms())  # a restarted gateway on the same state.db
    assert again.send(doc)["code"] == "replayed"  # type: ignore[index]
    assert doc["nonce"] in again.router.guard.seen
    again.clock.advance(400)  # past max_age_s + max_skew_s: the next command prunes it
    assert again.send(signed_by(OFFICE, "office", again.body("ping")))["outcome"] == "ok"  # type: ignore[index]
    assert doc["nonce"] not in again.router.guard.seen
    assert doc["nonce"] not in again.store.load("command_nonce")  # type: ignore[union-attr]


def test_the_python_snippet_in_the_docs_signs_what_the_gateway_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.commands.auth import Authority, Operator
    from gateway.commands.envelope import validate
    from gateway.commands.signing import write_private_key

    text = (Path(__file__).resolve().parents[1] / "docs" / "commands.md").read_text()
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    key = new_key()
    write_private_key(tmp_path / "building-office.key", key, "building-office")
    monkeypatch.chdir(tmp_path)
    scope: dict[str, Any] = {}
    exec(compile(snippet, "docs/commands.md", "exec"), scope)
    operator = Operator("building-office", key.public_key(), frozenset({"door_pulse"}), frozenset({"*"}))
    authority = Authority("bldg-07", "riverside", [operator], ["door_pulse"])
    doc = json.loads(scope["payload"])
    who = authority.authenticate(doc)
    authority.authorize(who, validate(doc))
    assert who.by == "building-office"


def test_hostile_envelopes_never_escape_the_router(tmp_path: Path) -> None:
    """Generated envelopes around the signed fields: always a result (or a counted drop), never a raise."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    rig = Rig(tmp_path, config_toml('unsigned = ["ping"]', per_minute=100_000))
    junk = st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=8,
    )
    names = ["gw-7", "north", "office", "ping", "door_pulse", "A" * 86 + "=="]
    field = st.one_of(junk, st.sampled_from(names))
    keys = ["schema", "id", "gateway_id", "site", "key_id", "sig", "command", "args", "ts_ms", "nonce"]
    docs = st.dictionaries(st.sampled_from(keys), field)

    @settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(docs, st.booleans(), st.booleans())
    def never_raises(doc: dict[str, Any], aimed: bool, sign_it: bool) -> None:
        if aimed:  # past the target check, so the later checks see the junk
            doc = {**doc, "gateway_id": "gw-7", "site": "north"}
        if sign_it and isinstance(doc.get("key_id"), str):
            with contextlib.suppress(ValueError):  # no canonical form (NaN, huge int): sent unsigned
                doc = signed_by(OFFICE, "office", doc)
        try:
            payload = json.dumps(doc).encode()
        except (ValueError, TypeError):
            return
        r = rig.send(payload)
        assert r is not None and r["outcome"] in ("ok", "rejected"), r
        assert r.get("code") != "internal_error", r

    never_raises()
    assert set(rig.router.report().refusals) <= {c.value for c in Code}
