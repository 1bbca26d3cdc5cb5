#!/usr/bin/env python3
"""Send --count events ({"seq": N, "message": ...}) with PyPI pylogbeat 2.1.0.

pylogbeat speaks Lumberjack v2: per send() call one W frame and one zlib C
frame holding all J frames, then it blocks reading ACKs. Its sequence numbers
keep counting across windows on one connection (window 2 of 1000 events is
1001..2000) and it waits until the ACK value equals that connection-wide
number, which Logstash provides (it ACKs the highest seq) but go-lumber does
not (it ACKs the window's event count). --connection-per-batch sends every
window on a fresh connection so numbering restarts at 1. Exit 0 once every
event was acknowledged; one JSON result line on stdout.
"""

import argparse
import json
import socket
import sys
import time

import pylogbeat


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", help="CA bundle verifying the server certificate; enables TLS")
    p.add_argument("--cert", help="client certificate for mutual TLS")
    p.add_argument("--key", help="client private key")
    p.add_argument("--tls", action="store_true", help="TLS even without --ca/--cert")
    p.add_argument("--insecure", action="store_true", help="TLS without verifying the server")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--batch", type=int, default=None, help="events per window (default: all in one)")
    p.add_argument("--connection-per-batch", action="store_true",
                   help="new connection for every window (sequence restarts at 1)")
    p.add_argument("--timeout", type=float, default=10.0, help="socket timeout in seconds (each read)")
    a = p.parse_args()
    if a.count < 1 or (a.batch is not None and a.batch < 1):
        p.error("--count and --batch must be positive")
    if bool(a.cert) != bool(a.key):
        p.error("--cert and --key must be given together")
    batch = a.batch or a.count
    use_tls = bool(a.tls or a.ca or a.cert or a.insecure)

    def new_client():
        # pylogbeat never checks the host name (check_hostname=False); it does
        # verify the chain unless ssl_verify=False.
        return pylogbeat.PyLogBeatClient(
            a.host, a.port, timeout=a.timeout, ssl_enable=use_tls,
            ssl_verify=not a.insecure, keyfile=a.key, certfile=a.cert, ca_certs=a.ca)

    sent = acked = windows = 0
    error = None
    start = time.monotonic()
    client = new_client()
    try:
        seq = 1
        while seq <= a.count:
            events = [{"seq": i, "message": f"event {i} from pylogbeat"}
                      for i in range(seq, min(seq + batch, a.count + 1))]
            if a.connection_per_batch and windows > 0:
                client.close()
                client = new_client()
            sent += len(events)
            windows += 1
            client.send(events)  # returns only once the window is fully ACKed
            acked += len(events)
            seq += len(events)
    except (OSError, socket.timeout, pylogbeat.ConnectionException, ValueError) as exc:
        error = f"window {windows} ({len(events)} events): {type(exc).__name__}: {exc}"
    finally:
        client.close()
    elapsed = time.monotonic() - start
    res = {"lib": f"pylogbeat {pylogbeat.__version__}", "tls": use_tls, "sent": sent,
           "acked": acked, "windows": windows, "elapsed_s": round(elapsed, 3),
           "events_per_s": round(acked / elapsed) if elapsed > 0 else 0}
    if error:
        res["error"] = error
    print(json.dumps(res))
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
