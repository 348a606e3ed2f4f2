"""Reading the state-committed topic back and checking it per key (Kafka mode)."""

from __future__ import annotations

import collections
import time
import uuid

# --- the state-committed topic (Kafka mode) ----------------------------------------------
#
# The relay publishes each commit's StateCommitted event keyed by workflow key, so a key's
# events are in one partition, in version order: 1, 2, ... up to the canonical version, each
# once. The one repeat allowed is an exact re-send (a relay that published rows but died, or
# lost its delivery reports, before marking them: its successor sends the same rows again):
# the same version with the same bytes, counted as resent_in_topic.


def check_topic(records, canonical: dict) -> tuple:
    """records: (partition, offset, record key, value) in partition order; canonical: key ->
    (version, state). Returns (Counter of the topic figures, examples)."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError
    from purereducer.pb import events_pb2

    f = collections.Counter()
    examples: list = []

    def example(text: str) -> None:
        if len(examples) < 12:
            examples.append(text)

    keys: dict = {}  # workflow key -> {"partition", "highest", "payloads": {version: bytes}}
    for partition, offset, record_key, value in records:
        where = f"p{partition}@{offset}"
        try:
            event = events_pb2.Event.FromString(value or b"")
        except DecodeError as err:
            f["topic_malformed"] += 1
            example(f"{where}: undecodable event: {err}")
            continue
        if event.WhichOneof("kind") != "state_committed":
            f["topic_malformed"] += 1
            example(f"{where}: {event.WhichOneof('kind')} on the state-committed topic")
            continue
        f["topic_events"] += 1
        committed = event.state_committed
        key, version = committed.workflow_key, committed.version
        if (record_key or b"").decode("utf-8", "replace") != key:
            f["topic_malformed"] += 1
            example(f"{where}: record key {record_key!r} for {key} v{version}")
        seen = keys.setdefault(key, {"partition": partition, "highest": 0, "payloads": {}})
        if seen["partition"] != partition:
            f["topic_malformed"] += 1
            example(f"{where}: {key} v{version} on partition {partition}, earlier ones on {seen['partition']}")
            continue
        if version in seen["payloads"]:
            if seen["payloads"][version] == value:
                f["resent_in_topic"] += 1
            else:
                f["topic_conflicts"] += 1
                example(f"{where}: {key} v{version} again with different bytes")
            continue
        seen["payloads"][version] = value
        if version == seen["highest"] + 1:
            seen["highest"] = version
        elif version > seen["highest"] + 1:
            f["topic_gaps"] += 1
            example(f"{where}: {key} v{version} right after v{seen['highest']}")
            seen["highest"] = version
        else:
            f["topic_reordered"] += 1
            example(f"{where}: {key} v{version} first seen after v{seen['highest']}")
    for key, (version, state) in canonical.items():
        payloads = keys.get(key, {}).get("payloads", {})
        missing = [v for v in range(1, version + 1) if v not in payloads]
        if missing:
            f["topic_missing"] += len(missing)
            example(f"{key}: v{missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                    + f" of v1..v{version} never on the topic")
        beyond = sorted(v for v in payloads if v > version or v < 1)
        if beyond:
            f["topic_beyond"] += len(beyond)
            example(f"{key}: v{beyond[-1]} on the topic, canonical v{version}")
        if version in payloads:
            last = events_pb2.Event.FromString(payloads[version]).state_committed
            carried = json_format.MessageToDict(last.state)
            if carried != state:
                f["topic_state_mismatch"] += 1
                example(f"{key}: the v{version} event carries {str(carried)[:120]}, canonical {str(state)[:120]}")
    for key in set(keys) - set(canonical):
        f["topic_beyond"] += len(keys[key]["payloads"])
        example(f"{key}: {len(keys[key]['payloads'])} events on the topic, no canonical state")
    return f, examples


def read_topic(brokers: str, topic: str, canonical: dict, within: float) -> tuple:
    """Reads `topic` from the beginning of every partition (a consumer outside any group, so
    nothing is committed), until every key of `canonical` has each of its versions 1..canonical
    or `within` seconds have passed; returns (records in partition order, complete)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
    from google.protobuf.message import DecodeError
    from purereducer.pb import events_pb2

    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"faults-check-{uuid.uuid4()}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": "read_uncommitted", "auto.offset.reset": "earliest"})
    deadline = time.monotonic() + within
    records: list = []
    want = {key: version for key, (version, _) in canonical.items() if version}
    have: dict = collections.defaultdict(set)
    try:
        metadata = consumer.list_topics(topic, timeout=30)
        partitions = sorted(metadata.topics[topic].partitions) if topic in metadata.topics else []
        if not partitions:
            raise AssertionError(f"topic {topic} has no partitions on {brokers}")
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        at_end: set = set()

        def complete() -> bool:
            return all(len({v for v in have[k] if 1 <= v <= n}) >= n for k, n in want.items())

        while True:
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error():
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        at_end.add(message.partition())
                        continue
                    raise AssertionError(f"reading {topic}: {message.error()}")
                at_end.discard(message.partition())
                records.append((message.partition(), message.offset(), message.key(), message.value()))
                try:
                    committed = events_pb2.Event.FromString(message.value() or b"").state_committed
                    have[committed.workflow_key].add(committed.version)
                except DecodeError:
                    pass  # check_topic reports it
            if len(at_end) == len(partitions) and complete():
                break
            if time.monotonic() >= deadline:
                break
    finally:
        consumer.close()
    records.sort(key=lambda r: (r[0], r[1]))
    return records, complete()
