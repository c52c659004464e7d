"""An independent Sparkplug host for the tests: pysparkplug (not our code) decodes every message.

Runs in its own venv (pysparkplug pins paho-mqtt < 2; see tests/support/spb_venv.py), so it imports
nothing of Lintel. Subscribes `spBv1.0/#` on the broker and prints one JSON line per message as
pysparkplug decoded it, aliases resolved through the births it saw (a DDATA alias missing from its
device's DBIRTH is printed as an error, not guessed). Reads commands on stdin:
  `rebirth <group> <node>`: an NCMD `Node Control/Rebirth` = true, encoded by pysparkplug;
  `state <host_id> online|offline`: the retained STATE of a primary host (3.0 JSON);
  `raw <topic> [hex]` / `retained <topic> hex`: hostile bytes, published as they are.
Each printed message carries the QoS and retain flag it was delivered with (the subscription is
QoS 1, so a message published at QoS 0 arrives at QoS 0).

    python spb_host.py PORT
"""

from __future__ import annotations

import json
import sys
import threading
import time

import paho.mqtt.client as paho
import pysparkplug as spb

births: dict[tuple[str, str, str | None], spb.DBirth | spb.NBirth] = {}
lock = threading.Lock()
online_as: list[str] = []  # host ids this host has said online (said again on every connection)
asked: set[tuple[str, str]] = set()  # nodes asked for a rebirth since their last NBIRTH
client: paho.Client


def emit(record: dict) -> None:
    with lock:
        sys.stdout.write(json.dumps(record, default=str) + "\n")
        sys.stdout.flush()


def metrics_of(payload) -> list[dict]:
    return [
        {
            "name": m.name,
            "alias": m.alias,
            "value": m.value,
            "datatype": m.datatype.name,
            "historical": m.is_historical,
            "null": m.is_null,
            "ts": m.timestamp,
        }
        for m in payload.metrics
    ]


def on_message(_c, _u, msg) -> None:
    record: dict = {"topic": msg.topic, "t": time.time(), "qos": msg.qos, "retain": bool(msg.retain)}
    try:
        topic = spb.Topic.from_str(msg.topic)
        verb = str(topic.message_type)
        record["type"] = verb
        if verb == "STATE":
            emit(record)
            return
        key = (topic.group_id, topic.edge_node_id, topic.device_id)
        if verb in ("DDATA", "DBIRTH", "DDEATH") and (*key[:2], None) not in births and key[:2] not in asked:
            # data of a node whose NBIRTH we never saw (we connected late): what a host does
            asked.add(key[:2])
            rebirth(*key[:2])
        birth = births.get(key) if verb in ("DDATA", "DCMD") else None
        if verb == "NDATA":
            birth = births.get((topic.group_id, topic.edge_node_id, None))
        message = spb.Message.from_mqtt_message(msg, birth=birth)
        payload = message.payload
        if verb in ("NBIRTH", "DBIRTH"):
            births[key] = payload
        if verb == "NBIRTH":  # a new session: its devices are born again
            asked.discard(key[:2])
            for k in [k for k in births if k[:2] == key[:2] and k[2] is not None]:
                del births[k]
        if verb == "NDEATH":
            record["bd_seq"] = payload.bd_seq_metric.value
        else:
            record["seq"] = getattr(payload, "seq", None)
            record["timestamp"] = payload.timestamp
        if hasattr(payload, "metrics"):
            record["metrics"] = metrics_of(payload)
    except Exception as exc:  # an undecodable message or an alias the births never gave
        record["error"] = f"{type(exc).__name__}: {exc}"
    emit(record)


def rebirth(group: str, node: str) -> None:
    metric = spb.Metric(
        timestamp=spb.get_current_timestamp(),
        name="Node Control/Rebirth",
        datatype=spb.DataType.BOOLEAN,
        value=True,
    )
    payload = spb.NCmd(timestamp=spb.get_current_timestamp(), metrics=(metric,))
    client.publish(f"spBv1.0/{group}/NCMD/{node}", payload.encode(), qos=1)
    emit({"type": "REBIRTH_ASKED", "node": node})


def say_state(host_id: str, online: bool) -> None:
    state = spb.State(timestamp=spb.get_current_timestamp(), online=online)
    client.publish(f"spBv1.0/STATE/{host_id}", state.encode(), qos=1, retain=True)


def on_connect(c, *_a) -> None:
    c.subscribe("spBv1.0/#", qos=1)
    for host_id in online_as:  # a host says STATE on every connection (the broker may have lost it)
        say_state(host_id, True)
    emit({"type": "HOST_CONNECTED"})


def main() -> None:
    global client
    port = int(sys.argv[1])
    client = paho.Client(client_id="spb-test-host", clean_session=True)
    client.reconnect_delay_set(0.2, 1)
    client.on_message = on_message
    client.on_connect = on_connect
    client.connect("127.0.0.1", port, 30)
    client.loop_start()
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["rebirth"]:
            rebirth(words[1], words[2])
        elif words[:1] == ["state"]:
            online = words[2] == "online"
            if online and words[1] not in online_as:
                online_as.append(words[1])
            elif not online and words[1] in online_as:
                online_as.remove(words[1])
            say_state(words[1], online)
        elif words[:1] == ["raw"]:  # raw <topic> <hex>: hostile input for the edge node
            client.publish(words[1], bytes.fromhex(words[2]) if len(words) > 2 else b"", qos=1)
        elif words[:1] == ["retained"]:  # retained <topic> <hex>: a forged retained message
            client.publish(words[1], bytes.fromhex(words[2]), qos=1, retain=True)
    client.loop_stop()


if __name__ == "__main__":
    main()
