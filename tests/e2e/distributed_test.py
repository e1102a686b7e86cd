#!/usr/bin/env python3
"""End-to-end test of the distributed topology against the standalone path (issue 3).

Starts deploy/local/run.sh (K redis-servers, drainmet-config, two receivers, two outlets)
with a fake Librato of its own, posts the heroku-sample drain bodies restamped to now
round-robin across both receivers (resolution 1 s, grace 1 s), re-posts the first
body with its frame id to the other receiver (counted once as a duplicate), waits until the outlets
have posted every window, and requires exactly the gauges `drainmet replay --resolution 1`
gives for the same restamped bodies: same (name, source, measure_time, period), same
count/min/max/value, sum and sum_squares to 1e-12 relative (the rule of
tests/fixtures/data/README.md); a gauge posted twice must be an identical re-post.
Before stopping, checks the shard placement on every Redis server (docs/redis-layout.md
"Keys"): every key is `dm:{s<N>}:<suffix>` with a documented suffix and N % K == the
server's 0-based index (shard s lives on servers[s % K], config ServerOfShard), except
`dm:outlets` (the outlets' heartbeats), which must be on the first server and only there,
and `dm:wm` / `dm:wm_exp` (the receivers' watermarks), which may be on every server;
every shard 0..S-1 has its `fence` key (each was leased); the windows are drained (no
`pts:`/`proc:`/`pending`/`sealed_index` left); each server holds the data keys (`dedupe:`,
`sealed:`, `done:`) of at least one shard and a `done:` marker.
Then stops the topology with SIGTERM and requires exit status 0.

--redis-servers K (default 1) runs K Redis servers (CTest drainmet_e2e_distributed with 1,
drainmet_e2e_distributed_3redis with 3).

Standard library only. Fails (never skips) when redis-server is missing.

usage: distributed_test.py --binaries BUILD/services [--redis-servers K] [--keep]
"""
import argparse
import base64
import concurrent.futures
import datetime as dt
import glob
import http.server
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SAMPLE = os.path.join(ROOT, "tests", "fixtures", "data", "heroku-sample")
RUN_SH = os.path.join(ROOT, "deploy", "local", "run.sh")

RESOLUTION = 1
GRACE = 1
# The sample spans ten minutes; at resolution 1 s and grace 1 s a point is late two
# seconds after its second. Its timeline is compressed linearly onto
# [now + LEAD_S, now + LEAD_S + SPAN_S]: ahead of the clock (the receiver accepts points
# up to 60 s ahead, SEMANTICS §6.5) so that posting has LEAD_S seconds before the first
# window can close.
LEAD_S = 5.0
SPAN_S = 6.0


def log(msg):
    print(f"[e2e] {msg}", flush=True)


class Failure(Exception):
    pass


def load_restamp():
    """deploy/restamp.py as a module: its Logplex framing and timestamp parsing."""
    spec = importlib.util.spec_from_file_location("restamp", os.path.join(ROOT, "deploy", "restamp.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def restamp_all(restamp, bodies, start, span_s):
    """Maps every frame TIMESTAMP of every body linearly from the sample's [first, last]
    onto [start, start + span_s] (same order, same windows on both paths), recomputing
    octet counts. Uses restamp.py's frames(), TS and parse(); frames whose timestamp is
    "-" are kept as they are."""
    stamps = []
    for body in bodies:
        for msg in restamp.frames(body):
            m = restamp.TS.match(msg)
            if m and m.group(2) != b"-":
                stamps.append(restamp.parse(m.group(2)))
    if not stamps:
        raise Failure("no timestamps in the sample")
    first, last = min(stamps), max(stamps)
    scale = span_s / max((last - first).total_seconds(), 1e-9)
    out = []
    for body in bodies:
        buf = bytearray()
        for msg in restamp.frames(body):
            m = restamp.TS.match(msg)
            if m and m.group(2) != b"-":
                t = start + dt.timedelta(seconds=(restamp.parse(m.group(2)) - first).total_seconds() * scale)
                msg = m.group(1) + t.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00").encode() + m.group(3)
            buf += str(len(msg)).encode() + b" " + msg
        out.append(bytes(buf))
    return out, len(stamps)


class FakeLibrato:
    """POST /v1/metrics on 127.0.0.1:0: records every body, answers 200."""

    def __init__(self):
        self.lock = threading.Lock()
        self.bodies = []
        self.auth = set()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with outer.lock:
                    outer.bodies.append(body)
                    outer.auth.add(self.headers.get("Authorization", ""))
                reply = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/metrics"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self):
        with self.lock:
            return list(self.bodies)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def gauges_of_body(raw):
    """The gauges of one Librato request body, body-level defaults applied."""
    doc = json.loads(raw)
    out = []
    for g in doc.get("gauges", []):
        g = dict(g)
        for k in ("measure_time", "source", "period"):
            if k not in g and k in doc:
                g[k] = doc[k]
        out.append(g)
    return out


def gauge_id(g):
    return (g["name"], g.get("source", ""), g["measure_time"], g.get("period"))


def numbers_match(field, want, got):
    if field in ("sum", "sum_squares"):
        scale = max(abs(want), abs(got))
        return abs(want - got) <= 1e-12 * scale
    return want == got


def diff_gauge(want, got):
    diffs = []
    for field, value in want.items():
        if field not in got:
            diffs.append(f"missing field {field}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            other = got[field]
            if not isinstance(other, (int, float)) or not numbers_match(field, float(value), float(other)):
                diffs.append(f"{field} want {value!r} got {other!r}")
        elif value != got[field]:
            diffs.append(f"{field} want {value!r} got {got[field]!r}")
    for field in got:
        if field not in want:
            diffs.append(f"unexpected field {field}={got[field]!r}")
    return diffs


def index_gauges(bodies, what):
    """{id: gauge}, plus the number of identical re-posts; a non-identical second copy is a failure."""
    by_id, reposts, conflicts = {}, 0, []
    for raw in bodies:
        for g in gauges_of_body(raw):
            k = gauge_id(g)
            if k in by_id:
                if by_id[k] == g:
                    reposts += 1
                else:
                    conflicts.append(f"{what}: {k} posted twice with different values: {by_id[k]} vs {g}")
                continue
            by_id[k] = g
    return by_id, reposts, conflicts


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def metric_sum(text, name, **labels):
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^(\w+)(\{[^}]*\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        lab = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(lab.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


class Topology:
    """deploy/local/run.sh in the background, its summary parsed."""

    # This test's topology: 2 receivers, 2 outlets, any process exit fails the run.
    DEFAULT_OPTIONS = ("--receivers", "2", "--outlets", "2", "--fail-on-exit")

    def __init__(self, binaries, work, librato_url, options=DEFAULT_OPTIONS):
        self.work = work
        self.stderr = open(os.path.join(work, "run.sh.stderr"), "wb")
        args = [
            "bash", RUN_SH, "--dir", os.path.join(work, "topology"), "--binaries", binaries,
            "--librato-url", librato_url, "--grace-seconds", str(GRACE), "--flush-interval-ms", "100",
            "--ready-timeout", "30", *options,
        ]
        env = dict(os.environ)
        env.pop("DRAINMET_TOKEN", None)
        env["LIBRATO_EMAIL"] = "e2e@drainmet.invalid"
        env["LIBRATO_TOKEN"] = "e2e-api-token"
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.stderr, env=env,
                                     start_new_session=True)
        self.lines = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if line.startswith("msg=ready"):
                self.ready.set()
        self.ready.set()

    def wait_ready(self, timeout):
        if not self.ready.wait(timeout) or not any(x.startswith("msg=ready") for x in self.lines):
            raise Failure(f"run.sh not ready within {timeout}s (rc={self.proc.poll()}); stderr:\n" + self.stderr_tail())
        fields = [dict(re.findall(r'(\w+)=("[^"]*"|\S+)', x)) for x in self.lines]
        self.receivers = [f["url"] for f in fields if f.get("component") == "receiver"]
        self.outlets = [f["metrics_url"] for f in fields if f.get("component") == "outlet"]
        self.token = next(f["token"] for f in fields if f.get("msg") == "ready")
        self.dir = next(f["dir"] for f in fields if f.get("msg") == "ready")
        # The Redis servers in config order (index 1..K): {index, process, pid, unix, addr, log}.
        self.redis = sorted((f for f in fields if f.get("component") == "redis"),
                            key=lambda f: int(f.get("index", "1")))
        ready = next(f for f in fields if f.get("msg") == "ready")
        self.shards = int(ready.get("shards", "64"))

    def stderr_tail(self, n=40):
        self.stderr.flush()
        with open(self.stderr.name, "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")

    def stop(self, timeout=90):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise Failure(f"run.sh did not stop within {timeout}s")


class Resp:
    """A minimal blocking RESP2 client over a unix socket (enough for SCAN)."""

    def __init__(self, path, timeout=5):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = self.sock.makefile("rb")

    def call(self, *args):
        out = bytearray(b"*%d\r\n" % len(args))
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self._reply()

    def _reply(self):
        line = self.buf.readline()
        if not line.endswith(b"\r\n"):
            raise Failure(f"redis: connection closed mid-reply ({line!r})")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise Failure(f"redis error: {rest.decode(errors='replace')}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.buf.read(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise Failure(f"redis: unexpected reply {line!r}")

    def scan_all(self):
        keys, cursor = [], b"0"
        while True:
            cursor, batch = self.call("SCAN", cursor, "COUNT", 1000)
            keys.extend(batch)
            if cursor == b"0":
                return keys

    def close(self):
        self.sock.close()


SHARD_KEY = re.compile(rb"^dm:\{s(\d+)\}:(.+)$")
# The suffixes after dm:{sN}: (docs/architecture.md "Redis keys"); `dlq` is the
# dead-letter stream of RELIABILITY.md §3.3.
SUFFIXES = re.compile(rb"^(pts:\d+|proc:\d+|pending|sealed_index|dedupe:[A-Za-z0-9._-]+:.+|sealed:\d+|"
                      rb"sent:\d+|done:\d+|lease|fence|dlq)$")
DATA_KINDS = (b"dedupe", b"sealed", b"done")  # keys that stay after emission (TTLs of 1-2 h)
UNDRAINED_KINDS = (b"pts", b"proc", b"pending", b"sealed_index")


def redis_keys(topo):
    """[(server index, [key, ...])] of every Redis server of the topology, in config order."""
    out = []
    for k, red in enumerate(topo.redis):
        c = Resp(red["unix"])
        try:
            out.append((k, c.scan_all()))
        finally:
            c.close()
    return out


def placement_problems(keys_by_server, shards):
    """Checks the shard map on the keys of every server (the module docstring's rules);
    returns (problems, summary per server)."""
    n = len(keys_by_server)
    problems, summary, fences, outlets_key = [], [], set(), False
    for k, keys in keys_by_server:
        kinds, data_shards, done_shards = {}, set(), set()
        for key in keys:
            if key in (b"dm:wm", b"dm:wm_exp"):  # receivers' watermarks: every server
                continue
            if key == b"dm:outlets":
                if k != 0:
                    problems.append(f"server {k + 1}: dm:outlets is on server 1 only (redis-layout.md)")
                outlets_key = True
                continue
            m = SHARD_KEY.match(key)
            if not m:
                problems.append(f"server {k + 1}: key {key!r} is not dm:{{s<N>}}:...")
                continue
            shard, suffix = int(m.group(1)), m.group(2)
            if not SUFFIXES.match(suffix):
                problems.append(f"server {k + 1}: key {key!r} has an undocumented suffix")
            if shard >= shards:
                problems.append(f"server {k + 1}: key {key!r}: shard {shard} >= redis.shards {shards}")
            if shard % n != k:
                problems.append(f"server {k + 1}: key {key!r}: shard {shard} % {n} = {shard % n}, "
                                f"want {k} (servers[s % K])")
            kind = suffix.split(b":", 1)[0]
            kinds[kind] = kinds.get(kind, 0) + 1
            if kind in DATA_KINDS:
                data_shards.add(shard)
            if kind == b"done":
                done_shards.add(shard)
            if kind == b"fence":
                fences.add(shard)
            if kind in UNDRAINED_KINDS:
                problems.append(f"server {k + 1}: {key!r} left after every gauge was posted (not drained)")
        if not data_shards:
            problems.append(f"server {k + 1}: no shard's data keys (dedupe:/sealed:/done:) on it")
        if not done_shards:
            problems.append(f"server {k + 1}: no done: marker on it")
        summary.append(f"server{k + 1}: keys={len(keys)} data_shards={len(data_shards)} "
                       f"done_shards={len(done_shards)} " +
                       " ".join(f"{kind.decode()}={c}" for kind, c in sorted(kinds.items())))
    if not outlets_key:
        problems.append("no dm:outlets (the outlets' heartbeats) on server 1")
    missing = sorted(set(range(shards)) - fences)
    if missing:
        problems.append(f"shards without a fence key (never leased): {missing[:20]}")
    return problems, summary


def check_placement(topo, wait_s=15.0):
    """placement_problems, waiting (bounded) for the outlets' last acks to drain the windows."""
    until = time.monotonic() + wait_s
    while True:
        problems, summary = placement_problems(redis_keys(topo), topo.shards)
        undrained = [p for p in problems if "not drained" in p]
        if not undrained or time.monotonic() > until:
            return problems, summary
        time.sleep(0.25)


def post_body(url, token, frame_id, body, frames, deadline):
    headers = {
        "Content-Type": "application/logplex-1",
        "Authorization": "Basic " + base64.b64encode(f"{token}:".encode()).decode(),
        "Logplex-Msg-Count": str(frames),
        "Logplex-Frame-Id": frame_id,
        "User-Agent": "Logplex/v72",
    }
    last = None
    while time.monotonic() < deadline:
        req = urllib.request.Request(url + f"?resolution={RESOLUTION}", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            last = e.code
            if e.code != 503:
                raise Failure(f"POST {url} frame {frame_id}: HTTP {e.code}: {e.read()[:200]!r}")
        except OSError as e:
            last = repr(e)
        time.sleep(0.2)  # a retry with the same frame id, as Logplex does
    raise Failure(f"POST {url} frame {frame_id}: no 2xx before the deadline (last: {last})")


def run(args):
    if shutil.which("redis-server") is None:
        raise Failure("redis-server not found in PATH: this test needs it (apt-get install redis-server; .ci/run installs it)")
    drainmet = os.path.join(args.binaries, "standalone", "drainmet")
    for b in (drainmet, os.path.join(args.binaries, "receiver", "drainmet-receiver"),
              os.path.join(args.binaries, "outlet", "drainmet-outlet"),
              os.path.join(args.binaries, "config", "drainmet-config")):
        if not os.access(b, os.X_OK):
            raise Failure(f"{b} not built (ninja drainmet drainmet-receiver drainmet-outlet drainmet-config)")

    restamp = load_restamp()
    files = sorted(glob.glob(os.path.join(SAMPLE, "*.logplex")))
    if not files:
        raise Failure(f"no sample bodies in {SAMPLE}")
    originals = [open(f, "rb").read() for f in files]

    work = tempfile.mkdtemp(prefix="drainmet-e2e.")
    librato = FakeLibrato()
    topo = Topology(args.binaries, work, librato.url,
                    options=(*Topology.DEFAULT_OPTIONS, "--redis-servers", str(args.redis_servers)))
    ok = False
    try:
        t0 = time.monotonic()
        topo.wait_ready(60)
        log(f"topology ready in {time.monotonic() - t0:.1f}s: receivers={topo.receivers} dir={topo.dir}")
        if len(topo.receivers) != 2 or len(topo.outlets) != 2 or len(topo.redis) != args.redis_servers:
            raise Failure(f"want 2 receivers, 2 outlets and {args.redis_servers} redis servers in the summary, "
                          f"got {topo.lines}")

        # Restamp just before posting.
        start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=LEAD_S)
        bodies, nstamps = restamp_all(restamp, originals, start, SPAN_S)
        body_dir = os.path.join(work, "bodies")
        os.makedirs(body_dir)
        paths = []
        for f, b in zip(files, bodies):
            p = os.path.join(body_dir, os.path.basename(f))
            with open(p, "wb") as out:
                out.write(b)
            paths.append(p)
        last_close = start.timestamp() + SPAN_S + RESOLUTION + GRACE

        run_id = f"e2e-{os.getpid()}-{int(time.time())}"
        t_post = time.monotonic()
        deadline = t_post + LEAD_S + 20
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            futures = [
                pool.submit(post_body, topo.receivers[i % 2], topo.token, f"{run_id}-{i:03d}", b,
                            sum(1 for _ in restamp.frames(b)), deadline)
                for i, b in enumerate(bodies)
            ]
            for fu in futures:
                fu.result()
            # Logplex's redelivery of body 0 (same frame id) landing on the other receiver:
            # recognised through Redis, answered 2xx, counted once, no effect on the gauges.
            pool.submit(post_body, topo.receivers[1], topo.token, f"{run_id}-000", bodies[0],
                        sum(1 for _ in restamp.frames(bodies[0])), deadline).result()
        post_s = time.monotonic() - t_post
        log(f"posted {len(bodies)} bodies ({nstamps} stamped frames) in {post_s:.2f}s (lead {LEAD_S}s)")
        if post_s >= LEAD_S:
            log("warning: posting took longer than the lead; early windows may have closed (late points)")

        # The standalone path on the same bytes.
        rp = subprocess.run([drainmet, "replay", "--resolution", str(RESOLUTION), *paths],
                            capture_output=True, timeout=60)
        if rp.returncode != 0:
            raise Failure(f"drainmet replay failed ({rp.returncode}): {rp.stderr.decode()[-2000:]}")
        want, want_dup, want_conf = index_gauges([x for x in rp.stdout.splitlines() if x.strip()], "replay")
        if want_conf or want_dup:
            raise Failure(f"replay output has duplicate gauges: {want_conf[:3]}")
        if not want:
            raise Failure("replay produced no gauges")
        log(f"replay: {len(want)} gauges")

        # Wait (bounded) until the outlets have posted every expected gauge.
        wait_until = time.time() + max(0.0, last_close - time.time()) + 30
        while True:
            got, _, _ = index_gauges(librato.snapshot(), "librato")
            if set(want) <= set(got) or time.time() > wait_until:
                break
            time.sleep(0.25)
        time.sleep(1.5)  # let any straggler or duplicate arrive before judging
        log(f"librato: {len(librato.snapshot())} request bodies after {time.monotonic() - t_post:.1f}s")

        # Receiver and outlet counters, for the verdict and the report.
        stats = {}
        for i, u in enumerate(topo.receivers):
            _, text = http_get(u.replace("/logs", "/metrics"))
            for reason in ("late", "future", "series_limit"):
                stats[f"receiver{i + 1}.dropped.{reason}"] = metric_sum(text, "drainmet_points_dropped_total", reason=reason)
            stats[f"receiver{i + 1}.duplicate_requests"] = metric_sum(text, "drainmet_duplicate_requests_total")
            stats[f"receiver{i + 1}.points"] = metric_sum(text, "drainmet_points_total")
            stats[f"receiver{i + 1}.records_written"] = metric_sum(text, "drainmet_receiver_records_written_total")
        for i, u in enumerate(topo.outlets):
            _, text = http_get(u)
            for result in ("posted", "rejected", "expired"):
                stats[f"outlet{i + 1}.gauges.{result}"] = metric_sum(text, "drainmet_gauges_total", result=result)
        log("counters: " + " ".join(f"{k}={v:g}" for k, v in sorted(stats.items())))

        # Shard placement on the Redis servers, before they stop.
        placement, summary = check_placement(topo)
        for line in summary:
            log(f"redis {line}")

        rc = topo.stop()
        log(f"run.sh exited {rc}")

        got, reposts, conflicts = index_gauges(librato.snapshot(), "librato")
        problems = list(conflicts) + placement
        # Pre-aggregation: the receivers wrote merged partial buckets, far fewer than points.
        points = sum(v for k, v in stats.items() if k.endswith(".points"))
        records = sum(v for k, v in stats.items() if k.endswith(".records_written"))
        if not 0 < records < points:
            problems.append(f"receivers wrote {records:g} records for {points:g} points: no pre-aggregation")
        for k, g in sorted(want.items()):
            if k not in got:
                problems.append(f"missing: {json.dumps(g, sort_keys=True)}")
            else:
                d = diff_gauge(g, got[k])
                if d:
                    problems.append(f"{k}: " + "; ".join(d))
        for k in sorted(set(got) - set(want)):
            problems.append(f"unexpected: {json.dumps(got[k], sort_keys=True)}")
        bad_auth = {a for a in librato.auth if a != "Basic " + base64.b64encode(b"e2e@drainmet.invalid:e2e-api-token").decode()}
        if bad_auth:
            problems.append(f"posts with other credentials: {len(bad_auth)}")
        dups = sum(v for k, v in stats.items() if k.endswith(".duplicate_requests"))
        if dups != 1:
            problems.append(f"duplicate_requests counted {dups:g} in all, want 1 (body 0 re-posted to the other receiver)")
        for k, v in stats.items():
            if (".dropped." in k or k.endswith(".rejected") or k.endswith(".expired")) and v:
                problems.append(f"counter {k}={v:g}, want 0")
        if rc != 0:
            problems.append(f"run.sh exit status {rc}, want 0")
        log(f"compared {len(want)} gauges: {len(got)} posted, {reposts} identical re-posts, {len(problems)} problems")
        if problems:
            raise Failure("gauges differ from the standalone path or keys are misplaced:\n  " +
                          "\n  ".join(problems[:40]) +
                          (f"\n  ... and {len(problems) - 40} more" if len(problems) > 40 else ""))
        ok = True
    finally:
        if topo.proc.poll() is None:
            try:
                topo.stop()
            except Failure as e:
                log(str(e))
        librato.close()
        if not ok:
            log("run.sh stderr (tail):\n" + topo.stderr_tail())
            tdir = os.path.join(work, "topology")
            for name in sorted(os.listdir(tdir)) if os.path.isdir(tdir) else []:
                if name.endswith(".log"):
                    with open(os.path.join(tdir, name), "rb") as f:
                        tail = b"\n".join(f.read().splitlines()[-15:]).decode(errors="replace")
                    log(f"--- {name} (tail)\n{tail}")
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"work dir kept: {work}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binaries", required=True, help="the build tree's services directory")
    ap.add_argument("--redis-servers", type=int, default=1, help="Redis servers of the topology (default 1)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir after a pass")
    args = ap.parse_args()
    if args.redis_servers < 1:
        ap.error("--redis-servers must be >= 1")
    t0 = time.monotonic()
    try:
        run(args)
    except Failure as e:
        log(f"FAIL: {e}")
        return 1
    log(f"PASS in {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
