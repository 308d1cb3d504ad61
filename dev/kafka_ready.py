#!/usr/bin/env python3
"""Exit 0 when a Kafka-API broker at 127.0.0.1:PORT answers a Metadata request
and advertises itself on that same port.

An open port alone is not enough: the broker may accept TCP before its
storage engine is ready, and a wrong --advertised-listener-url would make
every client fail after bootstrap. Hand-rolled wire protocol (Metadata v0) so
the check needs no Kafka client library: kcat and Debian's librdkafka cannot
talk to these brokers.

Usage: kafka_ready.py PORT
"""
import socket
import struct
import sys


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


def main():
    port = int(sys.argv[1])
    client_id = b"sluice-dev-up"
    correlation_id = 7
    # Request header v1: api_key=3 (Metadata), api_version=0, correlation id,
    # client id; body: topics array of length 0 ("all topics" in v0).
    body = struct.pack(">hhih", 3, 0, correlation_id, len(client_id)) + client_id
    body += struct.pack(">i", 0)
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", read_exact(sock, 4))
        resp = read_exact(sock, size)
    (cid, nbrokers) = struct.unpack_from(">ii", resp, 0)
    if cid != correlation_id:
        sys.exit(f"correlation id {cid} != {correlation_id}")
    off = 8
    ports = []
    for _ in range(nbrokers):
        (_node, hlen) = struct.unpack_from(">ih", resp, off)
        off += 6
        host = resp[off:off + hlen].decode()
        off += hlen
        (bport,) = struct.unpack_from(">i", resp, off)
        off += 4
        ports.append((host, bport))
    if not any(p == port for _h, p in ports):
        sys.exit(f"broker advertises {ports}, not port {port}")
    print(f"brokers: {ports}")


if __name__ == "__main__":
    main()
