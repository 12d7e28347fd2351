#!/usr/bin/env python3
"""Feeds a running alertd as 1,000 hosts reporting 10 fields every 10 s, and
once a minute times /api/v1/stats over 7 days across hosts and for one host,
with the number of samples not yet compacted (the part a stats query reads
sample by sample). See docs/performance.md, "Start-up and stats over a week".

    python3 benches/stats_while_fed.py URL DATA_DIR SECONDS > measurements.txt
"""

import subprocess
import sys
import time
import urllib.request

import feed

WEEK = 7 * 86_400_000


def timed(url):
    started = time.perf_counter()
    urllib.request.urlopen(url).read()
    return round((time.perf_counter() - started) * 1000, 1)


def main():
    url, data_dir, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    end = time.time() + seconds
    next_measure = time.time() + 30
    while time.time() < end:
        tick = time.time()
        ts = int(tick * 1000)
        feed.post(url, 1000, ts)
        if time.time() >= next_measure:
            next_measure += 60
            raw = subprocess.run(
                ["sqlite3", f"{data_dir}/alertd.sqlite", "SELECT sum(count) FROM recent"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            now = int(time.time() * 1000)
            stats = f"{url}/api/v1/stats?from={now - WEEK}&to={now}"
            across = sorted(timed(stats + "&across=hosts") for _ in range(5))
            host = sorted(timed(stats + "&host=node-00042") for _ in range(5))
            print(f"{time.strftime('%H:%M:%S')} raw={raw} across_ms={across} host_ms={host}",
                  flush=True)
        time.sleep(max(0.0, 10 - (time.time() - tick)))


if __name__ == "__main__":
    main()
