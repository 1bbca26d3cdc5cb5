#!/usr/bin/env python3
"""Writes N realistic ~450-byte libbeat-shaped NDJSON events (deterministic) to stdout.

The same bytes are replayed by skidder (generator `replay:`) and by go-lumber's client
(`golumber client --file`), so both senders ship identical events.
"""
import json
import random
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
rng = random.Random(20240102)
hosts = ["web-01", "web-02", "web-03", "api-07", "auth-02", "db-01"]
paths = ["/api/v1/items", "/api/v1/orders", "/login", "/static/app.js", "/healthz",
         "/api/v2/search?q=shoes&page=2", "/cart/checkout"]
agents = ["Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
          "curl/8.5.0", "Go-http-client/1.1",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"]
for i in range(n):
    ts = "2024-05-%02dT%02d:%02d:%02d.%03dZ" % (1 + i // 86400 % 28, i // 3600 % 24,
                                             i // 60 % 60, i % 60, rng.randrange(1000))
    host = rng.choice(hosts)
    ip = "10.%d.%d.%d" % (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    status = rng.choice([200, 200, 200, 200, 304, 404, 500])
    msg = '%s - - [%s] "GET %s HTTP/1.1" %d %d "-" "%s" rt=%.3f' % (
        ip, ts, rng.choice(paths), status, rng.randrange(100, 90000), rng.choice(agents),
        rng.random())
    doc = {
        "@timestamp": ts,
        "@metadata": {"beat": "skidder", "type": "_doc", "version": "0.1.0"},
        "message": msg,
        "host": {"name": host},
        "log": {"file": {"path": "/var/log/nginx/access.log"}, "offset": rng.randrange(10**9)},
        "event": {"dataset": "nginx.access", "module": "nginx"},
        "agent": {"type": "skidder", "id": "%016x" % rng.getrandbits(64)},
    }
    sys.stdout.write(json.dumps(doc, separators=(",", ":")) + "\n")
