"""The fault suite's Kafka-aware proxy rewrites the answers that tell a client where to
connect (Metadata, FindCoordinator) to its own address, and nothing else."""

from __future__ import annotations

import struct

from aiokafka.protocol.coordination import FindCoordinatorResponse_v1
from aiokafka.protocol.metadata import MetadataResponse_v1, MetadataResponse_v5

from seminarops_devtools.testing.network import KafkaAddressRewriter

PROXY = ("127.0.0.1", 40001)


def request(api_key: int, version: int, correlation_id: int) -> bytes:
    body = struct.pack(">hhih", api_key, version, correlation_id, -1)  # null client id
    return struct.pack(">i", len(body)) + body


def response(correlation_id: int, body: bytes) -> bytes:
    payload = struct.pack(">i", correlation_id) + body
    return struct.pack(">i", len(payload)) + payload


def metadata_v1(host: str, port: int) -> MetadataResponse_v1:
    partitions = [(0, 0, 7, [7], [7])]
    return MetadataResponse_v1([(7, host, port, None)], 7, [(0, "t", False, partitions)])


def test_metadata_answers_name_the_proxy_instead_of_the_broker() -> None:
    rewriter = KafkaAddressRewriter(*PROXY)
    outgoing = request(3, 1, correlation_id=11)

    assert rewriter.requests(outgoing) == outgoing
    answer = rewriter.responses(response(11, metadata_v1("10.0.0.9", 9092).encode()))

    body = MetadataResponse_v1.decode(answer[8:])
    assert body.brokers == [(7, *PROXY, None)]
    assert body.topics == metadata_v1("x", 1).topics  # the rest as the broker said it
    assert rewriter.rewritten == 1


def test_the_coordinators_address_is_the_proxy() -> None:
    rewriter = KafkaAddressRewriter(*PROXY)
    rewriter.requests(request(10, 1, correlation_id=5))
    broker_said = FindCoordinatorResponse_v1(0, 0, None, 7, "10.0.0.9", 9092)

    answer = rewriter.responses(response(5, broker_said.encode()))

    body = FindCoordinatorResponse_v1.decode(answer[8:])
    assert (body.coordinator_id, body.host, body.port) == (7, *PROXY)


def test_answers_arriving_in_pieces_come_out_whole_and_in_order() -> None:
    rewriter = KafkaAddressRewriter(*PROXY)
    other = response(1, b"fetch answer bytes")
    metadata = MetadataResponse_v5(0, [(7, "broker", 9092, None)], "c", 7, [])
    stream = other + response(2, metadata.encode())
    # The request for the second answer arrives split across two reads too.
    asked = request(3, 5, correlation_id=2)
    rewriter.requests(asked[:5])
    rewriter.requests(asked[5:])

    out = b"".join(rewriter.responses(stream[i : i + 3]) for i in range(0, len(stream), 3))

    assert out.startswith(other)  # an answer nobody asked to rewrite passes untouched
    body = MetadataResponse_v5.decode(out[len(other) + 8 :])
    assert body.brokers == [(7, *PROXY, None)]


def test_an_answer_to_an_unknown_version_passes_untouched_and_is_noted() -> None:
    rewriter = KafkaAddressRewriter(*PROXY)
    rewriter.requests(request(3, 12, correlation_id=9))
    answer = response(9, b"a flexible-version body")

    assert rewriter.responses(answer) == answer
    assert rewriter.unknown_versions == {(3, 12)}
