#!/usr/bin/env python3
"""Writes a syslog drain stream (FORMATS.md §2) made of the heroku-sample drain bodies.

Each frame of tests/fixtures/data/heroku-sample/*.logplex becomes
`<PRI>1 TIMESTAMP d.TOKEN APP PROCID - - MSG`, octet-counted (RFC 6587), stamped now,
the whole set repeated REPS times. For docs/performance.md "Syslog drains".

usage: tests/load/syslog_stream.py TOKEN REPS OUT   (prints the number of frames written)
"""
import datetime as dt
import glob
import os
import sys


def main():
    token, reps, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "data", "heroku-sample")
    frames = []
    for path in sorted(glob.glob(os.path.join(root, "*.logplex"))):
        data = open(path, "rb").read()
        i = 0
        while i < len(data):
            sp = data.index(b" ", i)
            n = int(data[i:sp])
            msg = data[sp + 1:sp + 1 + n]
            i = sp + 1 + n
            # HTTP drain frame: <PRI>1 TS HOST APP PROCID - MSG (MSGID '-', no SD field)
            parts = msg.split(b" ", 6)
            frames.append((parts[0], parts[3], parts[4], parts[6] if len(parts) > 6 else b"\n"))
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00").encode()
    with open(out, "wb") as f:
        for _ in range(reps):
            for pri, app, proc, rest in frames:
                m = b" ".join([pri, now, token.encode(), app, proc, b"-", b"-", rest])
                f.write(str(len(m)).encode() + b" " + m)
    print(len(frames) * reps)


if __name__ == "__main__":
    main()
