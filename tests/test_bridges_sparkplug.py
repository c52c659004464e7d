"""The Sparkplug B bridge, fast: our payload descriptor against an independently compiled
`sparkplug_b.proto` (pysparkplug's), the rows one commit makes, alias and bdSeq stability across
restarts, and the outbox filter that keeps the two links' rows apart."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core import Event, Klass, Reading
from gateway.delivery.queues import SPARKPLUG_PREFIX
from gateway.delivery.sparkplug_inbound import BadInput, host_state, rebirth_requested
from gateway.delivery.sparkplug_rows import outgoing
from gateway.storage.outbox import OutboxLimits, OutboxStore, OutboxWriter
from gateway.storage.outbox.reader import OutboxReader
from gateway.upstream.bridges import Group
from gateway.upstream.bridges import sparkplug_pb as pb
from gateway.upstream.bridges.sparkplug import SparkplugBridge, SpbTopics, coerce, node_birth, node_death
from gateway.upstream.bridges.sparkplug_model import FIRST_DEVICE_ALIAS, NODE_METRICS, NodeModel
from gateway.upstream.encode import Encoder
from tests.support import spb_venv
from tests.support.harness import TOPICS

T = 1_795_400_000_000
DUMP = """
import json
from pysparkplug._protobuf import sparkplug_b_pb2 as p
out = {}
for msg in (p.Payload, p.Payload.Metric):
    out[msg.DESCRIPTOR.full_name] = {
        f.name: [f.number, f.type, f.is_repeated, f.containing_oneof and f.containing_oneof.name]
        for f in msg.DESCRIPTOR.fields
    }
print(json.dumps(out))
"""


def decoded(payload: bytes) -> Any:
    return pb.Payload.FromString(payload)


def bridge(tmp_path: Path) -> SparkplugBridge:
    return SparkplugBridge(SpbTopics("court", "gw-1"), NodeModel(tmp_path / "sparkplug.json"))


def test_our_descriptor_matches_an_independently_compiled_sparkplug_proto() -> None:
    out = subprocess.run([str(spb_venv.python()), "-c", DUMP], capture_output=True, text=True, check=True)
    theirs = json.loads(out.stdout)
    for msg in (pb.Payload, pb.Metric):
        name = msg.DESCRIPTOR.full_name
        ours = {
            f.name: [f.number, f.type, f.is_repeated, f.containing_oneof and f.containing_oneof.name]
            for f in msg.DESCRIPTOR.fields
        }
        assert ours, name
        for field, spec in ours.items():
            assert theirs[name][field] == spec, (name, field)


# The first device metric's alias: 0 and 1 are bdSeq and Rebirth, then the node's health metrics.
A = FIRST_DEVICE_ALIAS + len(NODE_METRICS)


def test_one_commit_births_new_metrics_then_data_carries_aliases_only(tmp_path: Path) -> None:
    b = bridge(tmp_path)
    first = b.messages(
        Group(
            [
                Reading("meter-1", "energy_kwh", 12, T, counter=True),
                Reading("meter-1", "power_w", 1500, T),
                Reading("door-1", "door_open", True, T, klass=Klass.STATE),
            ],
            now_ms=T + 5,
        )
    )
    # one DBIRTH per device names its new metrics (not measured yet: null), then every reading is data
    topics = [m.topic.split("/", 2)[2] for m in first]
    assert topics == ["DBIRTH/gw-1/meter-1", "DBIRTH/gw-1/door-1", "DDATA/gw-1/meter-1", "DDATA/gw-1/door-1"]
    birth = decoded(first[0].payload)
    assert [(m.name, m.alias, m.datatype, m.is_null) for m in birth.metrics] == [
        ("energy_kwh", A, pb.UINT64, True),
        ("power_w", A + 1, pb.DOUBLE, True),
    ]
    data = decoded(first[2].payload)
    kinds = [(m.alias, m.WhichOneof("value")) for m in data.metrics]
    assert kinds == [(A, "long_value"), (A + 1, "double_value")]
    assert (data.metrics[0].long_value, data.metrics[1].double_value) == (12, 1500.0)
    assert not birth.HasField("seq") and not data.HasField("seq")  # given at publish time
    rows = b.messages(
        Group(
            [
                Reading("meter-1", "energy_kwh", 13, T + 1000, counter=True),
                Reading("meter-1", "power_w", 1400.5, T + 1000),
                Reading("meter-1", "power_w", 0, T + 1000, quality="comm_error"),
                Event("door-1", "access_granted", T + 1000, {"resident_id": "r-7", "door": "d1"}),
            ],
            now_ms=T + 1005,
        )
    )
    # the event is door-1's new metric: door-1 is born again (its door_open current), meter-1 is not
    topics = [m.topic.split("/", 2)[2] for m in rows]
    assert topics == ["DBIRTH/gw-1/door-1", "DDATA/gw-1/meter-1", "DDATA/gw-1/door-1"]
    reborn = {m.name: m for m in decoded(rows[0].payload).metrics}
    assert reborn["door_open"].boolean_value is True and reborn["Events/access_granted"].is_null
    data = decoded(rows[1].payload)
    assert [(m.HasField("name"), m.HasField("datatype")) for m in data.metrics] == [(False, False)] * 3
    assert [m.alias for m in data.metrics] == [A, A + 1, A + 1]
    assert data.metrics[2].is_null and data.metrics[0].timestamp == T + 1000
    event = decoded(rows[2].payload).metrics[0]
    assert json.loads(event.string_value) == {"severity": "info", "attrs": {"door": "d1"}}
    assert all(m.klass == Klass.TELEMETRY and not m.retain for m in first + rows)


def test_offline_is_a_ddeath_and_the_next_reading_a_rebirth(tmp_path: Path) -> None:
    b = bridge(tmp_path)
    b.messages(Group([Reading("m", "power_w", 1.0, T)], now_ms=T))
    rows = b.messages(
        Group(
            [
                Reading("m", "power_w", 2.0, T + 1),
                Event("m", "device_offline", T + 2, {}),
                Reading("m", "power_w", 3.0, T + 3),
            ],
            now_ms=T + 4,
        )
    )
    assert [m.topic.split("/")[2] for m in rows] == ["DDATA", "DDEATH", "DBIRTH", "DDATA"]
    assert decoded(rows[2].payload).metrics[0].double_value == 2.0  # born with its current value
    assert decoded(rows[3].payload).metrics[0].double_value == 3.0


def test_a_point_that_changes_type_is_refused_and_counted(tmp_path: Path) -> None:
    b = bridge(tmp_path)
    b.messages(Group([Reading("m", "count", 5, T, counter=True)], now_ms=T))
    later = [Reading("m", "count", "five", T + 1), Reading("m", "count", 6.0, T + 2)]
    rows = b.messages(Group(later, now_ms=T))
    assert b.bad_input == 1 and len(rows) == 1
    assert decoded(rows[0].payload).metrics[0].long_value == 6
    assert coerce("UInt64", -1) == (False, -1) and coerce("Double", True)[0] is False


def test_aliases_and_bd_seq_survive_a_restart_and_a_bad_file_starts_afresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b = bridge(tmp_path)
    b.messages(Group([Reading("a", "x_w", 1.0, T), Reading("b", "y_w", 1.0, T)], now_ms=T))
    assert (b.model.next_bd_seq(), b.model.next_bd_seq()) == (0, 1)
    again = NodeModel(tmp_path / "sparkplug.json")
    assert again.bd_seq == 1 and again.next_bd_seq() == 2
    assert {d: [s.alias for s in dev.metrics.values()] for d, dev in again.devices.items()} == {
        "a": [A],
        "b": [A + 1],
    }
    with again.lock:
        assert again.slot("a", "z_w", "Double")[0].alias == A + 2
    (tmp_path / "sparkplug.json").write_text('{"bd_seq": 3, "devices": {"a": [["x", 2, "Complex"]]}}')
    with caplog.at_level(logging.WARNING):
        fresh = NodeModel(tmp_path / "sparkplug.json")
    assert fresh.devices == {} and "afresh" in caplog.text


def test_node_birth_and_death_and_seq_at_publish_time() -> None:
    birth = decoded(node_birth(7, T))
    assert birth.seq == 0
    assert {m.name: (m.alias, m.datatype) for m in birth.metrics} == {
        "bdSeq": (0, pb.INT64),
        "Node Control/Rebirth": (1, pb.BOOLEAN),
    }
    assert birth.metrics[1].boolean_value is False
    death = decoded(node_death(7, T))
    assert not death.HasField("seq") and [m.long_value for m in death.metrics] == [7]
    stored = pb.encode(T, [pb.M(2, 1.5, T, pb.DOUBLE)])
    assert decoded(pb.with_seq(stored, 255)).seq == 255
    history = decoded(pb.as_historical(stored, 3))
    assert history.seq == 3 and history.metrics[0].is_historical and history.metrics[0].double_value == 1.5


def test_the_native_reader_and_the_sparkplug_reader_see_only_their_own_rows(tmp_path: Path) -> None:
    b = bridge(tmp_path)
    from gateway.upstream.bridges import Bridges

    store = OutboxStore(tmp_path / "o.db")
    writer = OutboxWriter(store, Encoder(TOPICS, Bridges([b])), _clock(), OutboxLimits(commit_window_s=0.01))
    writer.start()
    try:
        for i in range(20):
            writer.submit(Reading("m", "power_w", float(i), T + i))
        assert writer.flush()
        reader = OutboxReader(tmp_path / "o.db")
        native = reader.page(Klass.TELEMETRY, 0, None, 1000, SPARKPLUG_PREFIX, with_prefix=False)
        spb = reader.page(Klass.TELEMETRY, 0, None, 1000, SPARKPLUG_PREFIX)
        everything = reader.page(Klass.TELEMETRY, 0, None, 1000)
        reader.close()
    finally:
        writer.stop()
    assert native and spb
    assert all(not m.topic.startswith("spBv1.0/") for m in native)
    assert all(m.topic.startswith("spBv1.0/") for m in spb)
    assert sorted(m.seq for m in native + spb) == [m.seq for m in everything]


def _clock() -> Any:
    from gateway.core import SystemClock

    return SystemClock()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_any_ncmd_or_state_bytes_are_parsed_or_refused_never_raise_otherwise(data: bytes) -> None:
    for parse in (rebirth_requested, host_state):
        with contextlib.suppress(BadInput):
            parse(data)


def test_only_a_true_rebirth_metric_is_a_command_and_sizes_are_bounded() -> None:
    def ncmd(**metric: Any) -> bytes:
        p = pb.Payload(timestamp=T)
        p.metrics.add(**metric)
        out: bytes = p.SerializeToString()
        return out

    assert rebirth_requested(ncmd(name="Node Control/Rebirth", boolean_value=True))
    assert rebirth_requested(ncmd(alias=1, boolean_value=True))  # by its NBIRTH alias
    assert not rebirth_requested(ncmd(name="Node Control/Rebirth", boolean_value=False))
    assert not rebirth_requested(ncmd(name="Node Control/Rebirth", string_value="true"))
    assert not rebirth_requested(ncmd(name="Node Control/Reboot", boolean_value=True))
    with pytest.raises(BadInput):
        rebirth_requested(b"\x0a" * (64 * 1024 + 1))
    assert host_state(b'{"online": true, "timestamp": 5}') == (True, 5)
    for bad in (b"ONLINE", b'{"online": "yes"}', b"[" * 1000, b'{"online": true, "timestamp": 1.5}'):
        with pytest.raises(BadInput):
            host_state(bad)


def test_rows_of_an_earlier_session_go_out_as_history_and_births_and_deaths_are_superseded() -> None:
    from gateway.storage.outbox.schema import PendingMessage

    data = pb.encode(T, [pb.M(2, 1.5, T, pb.DOUBLE)])
    birth = pb.encode(T, [pb.M(2, 1.5, T, pb.DOUBLE, "p")], births=True)
    base = "spBv1.0/g/{}/n/dev"
    live = outgoing(PendingMessage(Klass.TELEMETRY, 9, base.format("DDATA"), data), False, 4)
    assert live is not None and live[0] == base.format("DDATA") and decoded(live[1]).seq == 4
    assert outgoing(PendingMessage(Klass.TELEMETRY, 9, base.format("DDEATH"), b""), True, 4) is None
    assert outgoing(PendingMessage(Klass.TELEMETRY, 9, base.format("DBIRTH"), birth), True, 4) is None
    held = outgoing(PendingMessage(Klass.TELEMETRY, 9, base.format("DDATA"), data), True, 5)
    assert held is not None and held[0] == base.format("DDATA")
    history = decoded(held[1])
    assert history.seq == 5 and [(m.alias, m.is_historical) for m in history.metrics] == [(2, True)]


def test_held_sparkplug_rows_evicted_at_the_cap_are_counted_under_their_own_reason(tmp_path: Path) -> None:
    # Issue 27: rows held while the primary host is offline were evicted at the class cap and not
    # counted (they carry no records). They are counted as rows, `sparkplug_<reason>`, apart from the
    # records the native rows carry.
    from gateway.upstream.bridges import Bridges

    store = OutboxStore(tmp_path / "o.db")
    limits = OutboxLimits(commit_window_s=0.01, class_max_bytes={Klass.TELEMETRY: 20_000})
    writer = OutboxWriter(store, Encoder(TOPICS, Bridges([bridge(tmp_path)])), _clock(), limits)
    writer.start()
    try:
        for i in range(400):
            writer.submit(Reading("m", "power_w", float(i), T + i))
            if i % 20 == 19:
                assert writer.flush()  # one commit per 20 readings: one DDATA row each
        dropped = writer.snapshot()["dropped"]
        reader = OutboxReader(tmp_path / "o.db")
        left = reader.page(Klass.TELEMETRY, 0, None, 10_000, SPARKPLUG_PREFIX)
        reader.close()
    finally:
        writer.stop()
    assert dropped.get("telemetry.class_full", 0) > 0  # the native rows' records
    spb_dropped = dropped.get("telemetry.sparkplug_class_full", 0)
    # every Sparkplug row (the first commit's DBIRTH, one DDATA per commit) is still there or counted
    assert spb_dropped > 0 and spb_dropped + len(left) == 1 + 400 // 20


def test_values_survive_a_restart_and_a_device_out_of_the_config_is_retired(tmp_path: Path) -> None:
    b = bridge(tmp_path)
    b.messages(Group([Reading("a", "x_w", 1.5, T), Reading("b", "y_w", 2.5, T)], now_ms=T))
    b.messages(Group([Reading("a", "x_w", 3.5, T + 10)], now_ms=T + 10))  # not saved yet (interval)
    b.model.save_now()  # a clean stop
    again = NodeModel(tmp_path / "sparkplug.json", configured={"a"})
    first = again.snapshot()
    assert [(d, alive, [(s.name, s.value, s.ts_ms) for s in slots]) for d, alive, slots in first] == [
        ("a", True, [("x_w", 3.5, T + 10)]),
        ("b", False, []),  # retired: not born, one DDEATH at the first birth
    ]
    assert [d for d, _a, _s in again.snapshot()] == ["a"] and again.retired() == {"b"}
    # A held DDATA row of the retired device is superseded (the host could not resolve its aliases).
    from gateway.storage.outbox.schema import PendingMessage

    row = PendingMessage(
        Klass.TELEMETRY, 9, "spBv1.0/court/DDATA/gw-1/b", pb.encode(T, [pb.M(A + 1, 2.5, T, pb.DOUBLE)])
    )
    assert outgoing(row, True, 4, again.retired()) is None and outgoing(row, True, 4) is not None
    # It comes back to the configuration and reports: born again as any dead device.
    revived = SparkplugBridge(SpbTopics("court", "gw-1"), again)
    rows = revived.messages(Group([Reading("b", "y_w", 4.0, T + 20)], now_ms=T + 20))
    assert [m.topic.split("/")[2] for m in rows] == ["DBIRTH", "DDATA"] and again.retired() == frozenset()


def test_the_gateways_health_is_ndata_of_metrics_born_in_the_nbirth(tmp_path: Path) -> None:
    b = bridge(tmp_path)
    stats = {
        "uptime_s": 12.5,
        "outbox": {
            "rows": {"telemetry": 3, "event": 1},
            "dropped": {"telemetry.class_full": 4, "telemetry.sparkplug_class_full": 9},
        },
        "uplink": {"state": "connected"},
        "open_alarms": {"count": 2},
    }
    rows = b.messages(Group([], [stats], now_ms=T))
    assert [m.topic for m in rows] == ["spBv1.0/court/NDATA/gw-1"]
    health = b.model.node_snapshot()
    by_alias = {s.alias: s.name for s in health}
    data = {by_alias[m.alias]: m for m in decoded(rows[0].payload).metrics}
    assert data["Health/uptime_s"].double_value == 12.5 and data["Health/outbox_backlog"].long_value == 4
    assert data["Health/records_dropped"].long_value == 4 and data["Health/open_alarms"].long_value == 2
    assert data["Health/uplink"].string_value == "connected"
    birth = {m.name: m for m in decoded(node_birth(0, T + 1, health)).metrics}
    assert birth["Health/open_alarms"].long_value == 2 and birth["Health/uplink"].datatype == pb.STRING
    assert b.messages(Group([], [{"uptime_s": "odd"}], now_ms=T)) == []  # nothing usable: no row
