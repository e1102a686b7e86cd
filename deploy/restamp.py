#!/usr/bin/env python3
"""Restamps a captured drain body (application/logplex-1) to the current time.

Every RFC 3339 TIMESTAMP of every frame is shifted by the same amount so that the
latest frame is stamped "now minus --lag seconds"; octet counts are recomputed. The
frames keep their spacing: a capture spanning 20 s puts its first frames 20 s in the
past, which at a 5 s resolution (grace 5 s) are late. Restamp each file right before
posting it, and post long captures at a resolution longer than their span.
Used by the README's quick start to post the sample drain to a running drainmet.

usage: deploy/restamp.py FILE [--lag SECONDS] > restamped.logplex
"""
import argparse
import datetime as dt
import re
import sys

TS = re.compile(rb"^(<\d{1,3}>\d{1,2} )(\S+)( .*)$", re.S)


def frames(body):
    i = 0
    while i < len(body):
        while i < len(body) and body[i : i + 1] in (b"\r", b"\n", b" "):
            i += 1
        if i >= len(body):
            return
        sp = body.index(b" ", i)
        n = int(body[i:sp])
        yield body[sp + 1 : sp + 1 + n]
        i = sp + 1 + n


def parse(ts):
    return dt.datetime.fromisoformat(ts.decode().replace("Z", "+00:00"))


def main():
    ap = argparse.ArgumentParser(
        description="Restamp a captured drain body (application/logplex-1) to now; writes it to stdout.")
    ap.add_argument("file", help="a captured drain body (octet-counted syslog frames)")
    ap.add_argument("--lag", type=float, default=1.0,
                    help="seconds before now the latest frame is stamped (default 1.0); "
                    "the other frames keep their distance to it")
    args = ap.parse_args()
    body = open(args.file, "rb").read()
    msgs = list(frames(body))
    stamps = [parse(m.group(2)) for m in (TS.match(x) for x in msgs) if m and m.group(2) != b"-"]
    if not stamps:
        sys.exit("no timestamps found")
    shift = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=args.lag) - max(stamps)
    out = bytearray()
    for msg in msgs:
        m = TS.match(msg)
        if m and m.group(2) != b"-":
            t = (parse(m.group(2)) + shift).astimezone(dt.timezone.utc)
            msg = m.group(1) + t.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00").encode() + m.group(3)
        out += str(len(msg)).encode() + b" " + msg
    sys.stdout.buffer.write(bytes(out))


if __name__ == "__main__":
    main()
