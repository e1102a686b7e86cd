#!/usr/bin/python3
"""Redis CPU per record of ingest.lua (issue "Performance", docs/performance.md).

Starts a private redis-server (unix socket, AOF appendfsync always, as deploy/local/run.sh),
loads each given ingest.lua and sends it CALLS calls of one request with RECORDS one-point
records (100 bytes each, one window, no de-duplication), one call at a time, then reads the
server's CPU (utime + stime, /proc/PID/stat) and checks that every record is in the list.
Scripts are run alternately, RUNS times each, so that both see the same machine load.

  tests/load/redis_ingest_cost.py [--calls 300] [--records 800] [--runs 3] A.lua [B.lua ...]

Prints one logfmt line per run: script, redis_cpu_s, wall_s, records, ns_per_record (CPU).
Needs: redis-server, /usr/bin/python3 (standard library only).
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def read_reply(f):
    """Reads one RESP reply; returns its first line; raises on an error reply."""
    line = f.readline()
    kind = line[:1]
    if kind == b"-":
        raise RuntimeError(line.decode().strip())
    if kind == b"$":
        n = int(line[1:])
        if n >= 0:
            f.read(n + 2)
    elif kind == b"*":
        for _ in range(int(line[1:])):
            read_reply(f)
    elif kind not in (b"+", b":"):
        raise RuntimeError("unexpected reply %r" % line)
    return line


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(script, calls, records):
    work = tempfile.mkdtemp(prefix="drainmet-ingest-cost.")
    path = os.path.join(work, "redis.sock")
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", path, "--dir", work, "--appendonly", "yes",
         "--appendfsync", "always", "--save", ""], stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(path):
                break
            time.sleep(0.05)
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(path)
        f = conn.makefile("rb")
        source = open(script).read()
        conn.sendall(encode(["SCRIPT", "LOAD", source]))
        f.readline()
        sha = f.readline().strip().decode()
        close = str(int(time.time()) + 1000)
        # One request of 1 frame (tenant, "" = no de-duplication) and its records, in the
        # layout of the script's header: since stop 17 a call holds several shards (ARGV:
        # TTLs, allowance, shard count, then per shard its prefix and requests); before, one
        # (ARGV: prefix, TTLs, allowance, requests). Both are measured as they are called.
        request = ["1", "1", "acme", "", str(records)]
        if "shard_count" in source:
            args = ["EVALSHA", sha, "1", "dm:{s1}:pending", "600", "7200", "3", "1", "dm:{s1}:"] + request
        else:
            args = ["EVALSHA", sha, "1", "dm:{s1}:pending", "dm:{s1}:", "600", "7200", "3"] + request
        for _ in range(records):
            args += [close, b"x" * 100]
        command = encode(args)
        cpu0, wall0 = cpu_seconds(server.pid), time.monotonic()
        for _ in range(calls):
            conn.sendall(command)
            read_reply(f)
        cpu = cpu_seconds(server.pid) - cpu0
        wall = time.monotonic() - wall0
        conn.sendall(encode(["LLEN", "dm:{s1}:pts:" + close]))
        stored = int(f.readline()[1:])
        if stored != calls * records:
            raise RuntimeError("%s: %d records stored, %d sent" % (script, stored, calls * records))
        return cpu, wall, stored
    finally:
        server.terminate()
        server.wait()
        subprocess.run(["rm", "-rf", work], check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--records", type=int, default=800)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("scripts", nargs="+")
    a = parser.parse_args()
    for _ in range(a.runs):
        for script in a.scripts:
            cpu, wall, stored = run(script, a.calls, a.records)
            print("script=%s redis_cpu_s=%.2f wall_s=%.2f records=%d ns_per_record=%.0f" %
                  (script, cpu, wall, stored, cpu / stored * 1e9), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
