#!/usr/bin/env python3
"""Feeds a running alertd as HOSTS hosts (node-00000, ...) reporting the 10
built-in fields every 10 s, one POST for all of them, until stopped: the live
fleet beside a measurement (docs/performance.md, "The pages", sixth run).

    python3 benches/feed.py http://127.0.0.1:7481 100 &
"""

import json
import random
import sys
import time
import urllib.request

FIELDS = [
    "cpu.usage", "mem.usage", "mem.free", "requests.count", "requests.latency_sum",
    "requests.latency_avg", "eventsIn.count", "eventsOut.count", "warnings.count",
    "errors.count",
]


def post(url, hosts, ts):
    """One sample of each of `hosts` hosts at `ts`, in one POST."""
    body = [
        {
            "host": f"node-{host:05}",
            "ts": ts,
            "metrics": {field: round(random.random() * 100, 2) for field in FIELDS},
        }
        for host in range(hosts)
    ]
    request = urllib.request.Request(
        url + "/api/v1/samples",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request).read()


def main():
    url, hosts = sys.argv[1], int(sys.argv[2])
    while True:
        started = time.time()
        try:
            post(url, hosts, int(started * 1000))
        except OSError as error:
            # The service restarting between measurements: go on.
            print(f"feed: {error}", file=sys.stderr, flush=True)
        time.sleep(max(0.0, 10 - (time.time() - started)))


if __name__ == "__main__":
    main()
