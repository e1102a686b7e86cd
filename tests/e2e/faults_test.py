#!/usr/bin/env python3
"""Fault tests of the distributed topology (issue 3: "lose nothing when any process dies").

Each scenario starts deploy/local/run.sh (redis-server with AOF fsync always, drainmet-config,
receivers, outlets) with a fake Librato of its own, posts the heroku-sample drain bodies
restamped to now (resolution 1 s, grace 1 s), injects one fault, and then requires exactly
the gauges `drainmet replay --resolution 1` gives for the same bodies (the comparison rule
of tests/e2e/distributed_test.py, whose helpers it reuses). A gauge posted twice must be an
identical re-post (a gauge posted with different values for the same name/source/time is
a partial value: failure); identical re-posts are counted and printed.

Scenarios (one CTest entry each, `--scenario NAME`):
  outlet_kill9              2 receivers, 2 outlets, leases 3 s / renew 1 s, 4 shards; the fake
                            Librato answers after 1.5 s; the outlet holding an in-flight
                            request is killed with SIGKILL; the other takes its shards over.
  receiver_kill9_after_ack  every body posted (2xx), then one receiver is killed with SIGKILL.
  receiver_retry_other      body 0 posted to receiver A (2xx), A killed with SIGKILL at once,
                            the same request (same Logplex-Frame-Id) re-sent to receiver B:
                            2xx, duplicate_requests on B = 1, the gauges unchanged.
  redis_outage              half the bodies posted, Redis killed with SIGKILL, the rest posted
                            and retried on 503 with the same frame id (as Logplex does) while
                            Redis is down for 10 s, then Redis restarted with run.sh's command
                            line (same dir, same AOF): receivers and outlets recover by
                            themselves and nothing acknowledged is lost.
  redis_one_of_three        3 Redis servers (shard s on server s % 3), leases 3 s / renew 1 s:
                            half the bodies posted, redis-1 (which also holds dm:outlets) killed
                            with SIGKILL, the rest posted and retried on 503 while it is down
                            for 5 s, then restarted on its own AOF. A request touching its
                            shards answers 503 after the other servers' shards were applied;
                            the retry applies only the missing shards (per-shard de-dup), so
                            nothing is lost or counted twice; the keys' placement
                            (distributed_test.py) holds afterwards. 12 one-series probe
                            bodies posted once during the outage: 2xx for a shard on a live
                            server, 503 for one on the dead server (retried after it is back).

  outlet_sigstop            as outlet_kill9, but the outlet with a request in flight is paused
                            with SIGSTOP until the other holds every shard (its leases expired)
                            and 4 s more, then resumed with SIGCONT: its renewals, marks and
                            acks carry its old fencing tokens and are refused (RELIABILITY.md
                            §3.3); its log must show it ("shard lease lost" / "window abandoned"
                            why="fenced at ..."; drainmet_outlet_windows_total{result=abandoned}).
  receiver_sigstop          receivers' watermarks (docs/redis-layout.md): 2 receivers (flush
                            delay 1 s), 1 outlet, 4 shards; body 0 posted to receiver-1, which
                            is paused with SIGSTOP while it holds it (not written), past its
                            watermark's ttl and every window's close + allowance; the other
                            bodies go to receiver-2. The windows are sealed without receiver-1
                            (drainmet_outlet_windows_sealed_total{by="watermark"} > 0, its
                            dm:wm entry removed once expired); after SIGCONT its held request
                            is answered 2xx with its points counted late
                            (drainmet_points_dropped_total{reason="late"} > 0), and what was
                            emitted is exactly the replay of the other bodies.
  receiver_kill9_watermark  2 receivers, 1 outlet: receiver-1 killed with SIGKILL (its dm:wm
                            entry stays until it expires), every body posted to receiver-2:
                            windows are sealed by receiver-2's watermark (by="watermark" > 0),
                            the dead entry is removed by seal.lua, every gauge is emitted.
  redis_full                half the bodies posted, then Redis given maxmemory = used + 128 KiB
                            (noeviction, CONFIG SET) for 8 s while the rest are posted: what
                            cannot be written is answered 503 (never 2xx, never another code) and
                            retried; after CONFIG SET maxmemory 0 the retries are applied.
  librato_500               the fake Librato answers 500 (not applied) from before the first
                            window closes until --librato-500-s (default 120, the issue's
                            2 minutes; CTest 30) after it, then 200: every gauge applied exactly
                            once (no re-post: a 500 is not applied), within the retry horizon
                            (retry_horizon_seconds 900).
  librato_429               429 with Retry-After: --retry-after-s (3) for --librato-429-s (20):
                            every retry of a refused request (the same bytes) arrives at least
                            Retry-After after the 429 was answered; every gauge applied once.
  librato_slow              4 shards; every answer takes --slow-s (10) for --librato-slow-fault-s
                            (60; CTest 30): the outlet's request_timeout_ms (10 000 by default)
                            expires first, so each post times out and is re-posted; the fake
                            applies a body on receipt, so it must see identical re-posts only.
  config_down               run.sh's receiver and outlet read the file; a receiver and an outlet
                            following the config service (--config-service) are added, run.sh's
                            outlet stopped (SIGTERM), the config service killed with SIGKILL, the
                            bodies posted to the follower receiver and emitted by the follower
                            outlet from their last snapshot; a second drain token added to the
                            file meanwhile (401 while down); the service restarted on the same
                            port 10 s later: the receiver accepts the new token (it follows
                            again) and the outlet logs the new config.
  soak                      a round of the sample (restamped 20 s ahead, new frame ids) every
                            10 s for --soak-minutes (10; CTest 2), posted to whichever receivers
                            are alive and retried on 503 or a transport error, and a fault every
                            --fault-every-s (30), the kinds in a random order (--seed): outlet
                            kill -9 (restarted 1 s later), receiver kill -9 (restarted), outlet
                            SIGSTOP for lease + 3 s, Redis kill -9 (restarted 3 s later on its
                            AOF), Librato 500 for 10 s, Librato 429 (Retry-After: 2) for 10 s.
                            Every process's VmHWM (/proc/PID/status) is sampled each second; a
                            peak above RSS_BOUND_MB fails the run.

`--scenario all` runs every scenario and then the soak, one after the other.

Each prints one `[faults] result` logfmt line: points_sent (points the replay counts in the
restamped bodies), gauges_expected, gauges_emitted (distinct gauges posted), points_emitted,
gauges_lost, points_lost, gauges_duplicated (identical re-posts), recover_s (fault, or Redis's
restart in redis_outage, to every expected gauge posted), plus scenario figures.

Persistence: a stock Debian redis-server (/etc/redis/redis.conf) runs with AOF off
(`appendonly no`) and periodic RDB snapshots (Redis's default `save 3600 1 300 100 60 10000`),
so a crash loses the writes since the last snapshot; run.sh runs Redis with
`--appendonly yes --appendfsync always --save ""`: every write is fsynced to the AOF before
Redis answers, which is what lets a receiver's 2xx survive a Redis crash (redis_outage).

Standard library only. Fails (never skips) when redis-server is missing.

usage: faults_test.py --binaries BUILD/services --scenario NAME|all [--keep] [options, --help]
"""
import argparse
import base64
import concurrent.futures
import datetime as dt
import glob
import hashlib
import http.server
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import distributed_test as D  # noqa: E402  (shared helpers: restamping, gauge comparison, metrics)

Failure = D.Failure
RESOLUTION = D.RESOLUTION
GRACE = D.GRACE
SPAN_S = D.SPAN_S

PERSISTENCE_NOTE = ("redis persistence: Debian's redis.conf default is AOF off (appendonly no) with periodic "
                    "RDB snapshots (save 3600 1 300 100 60 10000); run.sh uses --appendonly yes "
                    "--appendfsync always --save \"\" (every write fsynced before Redis answers)")


def log(msg):
    print(f"[faults] {msg}", flush=True)


class SlowLibrato:
    """POST /v1/metrics on 127.0.0.1:0, with a behaviour switch (`set_mode`):

      status 200 (default): records the body on receipt (a body the real API received is
        applied even if the client dies, or times out, before the answer), waits `delay_s`,
        answers 200;
      status 500 or 429: the body is not applied (not recorded among the bodies); it waits
        `delay_s` and answers the status, with `Retry-After: retry_after` when it is set.

    Tracks the requests in flight and their client ports, and every attempt per body
    (sha-256 of the bytes: an outlet's retry of a request is byte-identical) with its
    arrival and answer times and status, for the Retry-After check."""

    def __init__(self, delay_s=0.0):
        self.delay_s = delay_s
        self.status = 200
        self.retry_after = None
        self.lock = threading.Lock()
        self.bodies = []
        self.inflight = {}  # client port -> receipt time
        self.started = 0
        self.refused = 0  # requests answered 500/429 (not applied)
        self.attempts = {}  # body sha-256 -> [[arrival, status, answered], ...]
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                port = self.client_address[1]
                digest = hashlib.sha256(body).hexdigest()
                with outer.lock:
                    status, delay_s, retry_after = outer.status, outer.delay_s, outer.retry_after
                    now = time.monotonic()
                    if 200 <= status < 300:
                        outer.bodies.append(body)
                    else:
                        outer.refused += 1
                    attempt = [now, status, None]
                    outer.attempts.setdefault(digest, []).append(attempt)
                    outer.inflight[port] = now
                    outer.started += 1
                try:
                    if delay_s:
                        time.sleep(delay_s)
                    reply = b"{}" if 200 <= status < 300 else b'{"errors":{"request":["fake Librato fault"]}}'
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    if retry_after is not None and not 200 <= status < 300:
                        self.send_header("Retry-After", str(retry_after))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the client died or timed out meanwhile
                finally:
                    with outer.lock:
                        attempt[2] = time.monotonic()
                        outer.inflight.pop(port, None)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def set_mode(self, status=200, delay_s=0.0, retry_after=None):
        """The behaviour of the requests arriving from now on (see the class comment)."""
        with self.lock:
            self.status, self.delay_s, self.retry_after = status, delay_s, retry_after
        log(f"fake Librato now answers {status} after {delay_s:g}s"
            + (f" with Retry-After: {retry_after}" if retry_after is not None else ""))

    def snapshot(self):
        with self.lock:
            return list(self.bodies)

    def attempts_snapshot(self):
        with self.lock:
            return {k: [list(a) for a in v] for k, v in self.attempts.items()}

    def inflight_ports(self):
        with self.lock:
            return list(self.inflight)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Topology(D.Topology):
    """D.Topology with the scenario's options (no --fail-on-exit: a killed process is
    logged by run.sh and the others keep running)."""

    def pids(self):
        out = {}
        with open(os.path.join(self.dir, "pids")) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    out[parts[0]] = int(parts[1])
        return out


def pid_of_client_port(port, pids):
    """The pid among `pids` owning the loopback TCP socket whose local port is `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if int(cols[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{cols[9]}]")
        except OSError:
            continue
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


class Poster:
    """Posts drain bodies like Logplex: same frame id on every retry, retried on 503 and on
    transport errors until a deadline; counts the 503s."""

    def __init__(self, token):
        self.token = token
        self.lock = threading.Lock()
        self.status_503 = 0
        self.transport_errors = 0

    def post(self, url, frame_id, body, frames, deadline, retry=True):
        headers = {
            "Content-Type": "application/logplex-1",
            "Authorization": "Basic " + base64.b64encode(f"{self.token}:".encode()).decode(),
            "Logplex-Msg-Count": str(frames),
            "Logplex-Frame-Id": frame_id,
            "User-Agent": "Logplex/v72",
        }
        last = None
        while time.monotonic() < deadline:
            req = urllib.request.Request(url + f"?resolution={RESOLUTION}", data=body, headers=headers,
                                         method="POST")
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                last = e.code
                if e.code != 503:
                    raise Failure(f"POST {url} frame {frame_id}: HTTP {e.code}: {e.read()[:200]!r}")
                if e.headers.get("Retry-After") is None:
                    raise Failure(f"POST {url} frame {frame_id}: 503 without Retry-After")
                with self.lock:
                    self.status_503 += 1
            except OSError as e:
                last = repr(e)
                with self.lock:
                    self.transport_errors += 1
            if not retry:
                break
            time.sleep(0.2)
        raise Failure(f"POST {url} frame {frame_id}: no 2xx (last: {last})")


class Run:
    """One scenario's run: sample restamped, topology up, replay expected gauges."""

    def __init__(self, args, lead_s, delay_s, extra):
        self.args = args
        self.drainmet = os.path.join(args.binaries, "standalone", "drainmet")
        for b in (self.drainmet, os.path.join(args.binaries, "receiver", "drainmet-receiver"),
                  os.path.join(args.binaries, "outlet", "drainmet-outlet"),
                  os.path.join(args.binaries, "config", "drainmet-config")):
            if not os.access(b, os.X_OK):
                raise Failure(f"{b} not built (ninja drainmet drainmet-receiver drainmet-outlet drainmet-config)")
        self.restamp = D.load_restamp()
        files = sorted(glob.glob(os.path.join(D.SAMPLE, "*.logplex")))
        if not files:
            raise Failure(f"no sample bodies in {D.SAMPLE}")
        self.files = files
        self.originals = [open(f, "rb").read() for f in files]
        self.lead_s = lead_s
        self.work = tempfile.mkdtemp(prefix="drainmet-faults.")
        self.librato = SlowLibrato(delay_s)
        self.topo = Topology(args.binaries, self.work, self.librato.url, extra)
        self.extra_procs = []  # processes the scenario started itself (a restarted redis)
        self.ok = False

    def start(self):
        t0 = time.monotonic()
        self.topo.wait_ready(60)
        log(f"topology ready in {time.monotonic() - t0:.1f}s: receivers={len(self.topo.receivers)} "
            f"outlets={len(self.topo.outlets)} dir={self.topo.dir}")
        self.poster = Poster(self.topo.token)
        start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=self.lead_s)
        self.bodies, self.nstamps = D.restamp_all(self.restamp, self.originals, start, SPAN_S)
        body_dir = os.path.join(self.work, "bodies")
        os.makedirs(body_dir)
        self.paths = []
        for f, b in zip(self.files, self.bodies):
            p = os.path.join(body_dir, os.path.basename(f))
            with open(p, "wb") as out:
                out.write(b)
            self.paths.append(p)
        self.frames = [sum(1 for _ in self.restamp.frames(b)) for b in self.bodies]
        self.run_id = f"faults-{os.getpid()}-{int(time.time())}"
        self.t_post = time.monotonic()
        self.last_close = start.timestamp() + SPAN_S + RESOLUTION + GRACE

    def frame_id(self, i):
        return f"{self.run_id}-{i:03d}"

    def post_all(self, indexes, urls, deadline):
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(self.poster.post, urls[n % len(urls)], self.frame_id(i), self.bodies[i],
                                   self.frames[i], deadline) for n, i in enumerate(indexes)]
            for fu in futures:
                fu.result()

    def expected(self, paths=None):
        rp = subprocess.run([self.drainmet, "replay", "--resolution", str(RESOLUTION),
                             *(self.paths if paths is None else paths)],
                            capture_output=True, timeout=60)
        if rp.returncode != 0:
            raise Failure(f"drainmet replay failed ({rp.returncode}): {rp.stderr.decode()[-2000:]}")
        want, dup, conf = D.index_gauges([x for x in rp.stdout.splitlines() if x.strip()], "replay")
        if dup or conf or not want:
            raise Failure(f"replay output unusable: {len(want)} gauges, duplicates {dup}, {conf[:3]}")
        return want

    def wait_all(self, want, extra_s):
        """Waits (bounded) until every expected gauge was posted; the monotonic time then."""
        until = time.time() + max(0.0, self.last_close - time.time()) + extra_s
        while True:
            got, _, _ = D.index_gauges(self.librato.snapshot(), "librato")
            if set(want) <= set(got):
                return time.monotonic()
            if time.time() > until:
                return None
            time.sleep(0.1)

    def counters(self, receivers=None, outlets=None):
        stats = {}
        for i, u in enumerate(self.topo.receivers):
            if receivers is not None and i not in receivers:
                continue
            _, text = D.http_get(u.replace("/logs", "/metrics"))
            for reason in ("late", "future", "series_limit"):
                stats[f"receiver{i + 1}.dropped.{reason}"] = D.metric_sum(text, "drainmet_points_dropped_total",
                                                                          reason=reason)
            stats[f"receiver{i + 1}.duplicate_requests"] = D.metric_sum(text, "drainmet_duplicate_requests_total")
        for i, u in enumerate(self.topo.outlets):
            if outlets is not None and i not in outlets:
                continue
            _, text = D.http_get(u)
            for result in ("posted", "rejected", "expired"):
                stats[f"outlet{i + 1}.gauges.{result}"] = D.metric_sum(text, "drainmet_gauges_total", result=result)
        log("counters: " + " ".join(f"{k}={v:g}" for k, v in sorted(stats.items())))
        return stats

    def verdict(self, want, t_fault, t_done, figures, problems):
        """Compares what Librato received with `want`; prints the result line; raises on a problem."""
        got, reposts, conflicts = D.index_gauges(self.librato.snapshot(), "librato")
        problems = list(problems) + conflicts
        lost = []
        for k, g in sorted(want.items()):
            if k not in got:
                lost.append(g)
                problems.append(f"missing: {json.dumps(g, sort_keys=True)}")
            else:
                d = D.diff_gauge(g, got[k])
                if d:
                    problems.append(f"{k}: " + "; ".join(d))
        for k in sorted(set(got) - set(want)):
            problems.append(f"unexpected: {json.dumps(got[k], sort_keys=True)}")
        points = lambda gs: int(sum(g.get("count", 0) for g in gs))  # noqa: E731
        res = {
            "scenario": self.args.scenario,
            "bodies": len(self.bodies),
            "points_sent": points(want.values()),
            "gauges_expected": len(want),
            "gauges_emitted": len(got),
            "points_emitted": points(g for k, g in got.items() if k in want),
            "gauges_lost": len(lost),
            "points_lost": points(lost),
            "gauges_duplicated": reposts,
            "partial_conflicts": len(conflicts),
            "librato_requests": len(self.librato.snapshot()),
            "recover_s": f"{t_done - t_fault:.2f}" if t_done and t_fault else "none",
        }
        res.update(figures)
        log("result " + " ".join(f"{k}={v}" for k, v in res.items()))
        if problems:
            raise Failure("gauges differ from the standalone path:\n  " + "\n  ".join(problems[:40]) +
                          (f"\n  ... and {len(problems) - 40} more" if len(problems) > 40 else ""))

    def stop(self):
        rc = self.topo.stop()
        log(f"run.sh exited {rc}")
        return rc

    def cleanup(self):
        if self.topo.proc.poll() is None:
            try:
                self.topo.stop()
            except Failure as e:
                log(str(e))
        for p in self.extra_procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.librato.close()
        if not self.ok:
            log("run.sh stderr (tail):\n" + self.topo.stderr_tail())
            tdir = os.path.join(self.work, "topology")
            for name in sorted(os.listdir(tdir)) if os.path.isdir(tdir) else []:
                if name.endswith(".log"):
                    with open(os.path.join(tdir, name), "rb") as f:
                        tail = b"\n".join(f.read().splitlines()[-15:]).decode(errors="replace")
                    log(f"--- {name} (tail)\n{tail}")
        if self.ok and not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            log(f"work dir kept: {self.work}")


LEASE_TTL_S = 3
SHORT_LEASES = ["--lease-ttl-ms", str(LEASE_TTL_S * 1000), "--lease-renew-ms", "1000"]
SHARDS = 4
# The dead outlet's leases expire one TTL after their last renewal; the survivor claims a
# shard it has seen free for one more TTL (or at once, once the dead heartbeat is gone and
# its fair share grows): at most about 2 TTL + one renew period, bounded here at 3 TTL.
TAKEOVER_BOUND_S = 3 * LEASE_TTL_S


def outlet_with_request_in_flight(r):
    """(pid, {pid: name}) of the outlet (outlet-1 or outlet-2) whose request the fake Librato
    is holding: polled for up to 60 s; Failure when none."""
    pids = r.topo.pids()
    outlet_pids = {pids[f"outlet-{i}"]: f"outlet-{i}" for i in (1, 2)}
    until = time.monotonic() + 60
    while time.monotonic() < until:
        for port in r.librato.inflight_ports():
            victim = pid_of_client_port(port, outlet_pids)
            if victim:
                return victim, outlet_pids
        time.sleep(0.02)
    raise Failure("no outlet request in flight at the fake Librato within 60s")


def outlet_kill9(args):
    r = Run(args, lead_s=5.0, delay_s=1.5,
            extra=["--receivers", "2", "--outlets", "2", "--shards", str(SHARDS), *SHORT_LEASES])
    try:
        r.start()
        r.post_all(range(len(r.bodies)), r.topo.receivers, r.t_post + r.lead_s + 20)
        log(f"posted {len(r.bodies)} bodies in {time.monotonic() - r.t_post:.2f}s")
        want = r.expected()
        # Wait for a request in flight, then kill the outlet that sent it.
        victim, outlet_pids = outlet_with_request_in_flight(r)
        posts_before = r.librato.started
        name = outlet_pids[victim]
        os.kill(victim, signal.SIGKILL)
        t_kill = time.monotonic()
        log(f"kill -9 {name} pid={victim} with a request in flight ({posts_before} requests received so far)")
        survivor = 1 if name == "outlet-1" else 0
        # Takeover: the survivor holds every shard (its drainmet_outlet_leases_held gauge).
        t_takeover, until = None, time.monotonic() + TAKEOVER_BOUND_S + 5
        while t_takeover is None and time.monotonic() < until:
            _, text = D.http_get(r.topo.outlets[survivor])
            if D.metric_sum(text, "drainmet_outlet_leases_held") >= SHARDS:
                t_takeover = time.monotonic()
            else:
                time.sleep(0.05)
        takeover = f"{t_takeover - t_kill:.2f}" if t_takeover else "none"
        log(f"survivor outlet-{survivor + 1} holds all {SHARDS} shards {takeover}s after the kill")
        t_done = r.wait_all(want, 60)
        time.sleep(2.0)  # stragglers and re-posts
        stats = r.counters(outlets=[survivor])
        problems = zero_counter_problems(stats)
        if t_takeover is None or t_takeover - t_kill > TAKEOVER_BOUND_S:
            problems.append(f"takeover of the dead outlet's shards took {takeover}s, want <= {TAKEOVER_BOUND_S:g}s")
        rc = r.stop()
        if rc != 0:
            problems.append(f"run.sh exit status {rc}, want 0")
        r.verdict(want, t_kill, t_done, {"killed": name, "requests_before_kill": posts_before,
                                         "takeover_s": takeover}, problems)
        r.ok = True
    finally:
        r.cleanup()


def receiver_kill9_after_ack(args):
    r = Run(args, lead_s=5.0, delay_s=0.0, extra=["--receivers", "2", "--outlets", "2"])
    try:
        r.start()
        r.post_all(range(len(r.bodies)), r.topo.receivers, r.t_post + r.lead_s + 20)
        pid = r.topo.pids()["receiver-1"]
        os.kill(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        log(f"posted {len(r.bodies)} bodies (all 2xx) in {t_kill - r.t_post:.2f}s; kill -9 receiver-1 pid={pid}")
        want = r.expected()
        t_done = r.wait_all(want, 30)
        time.sleep(1.5)
        stats = r.counters(receivers=[1])
        problems = zero_counter_problems(stats)
        rc = r.stop()
        if rc != 0:
            problems.append(f"run.sh exit status {rc}, want 0")
        r.verdict(want, t_kill, t_done, {"killed": "receiver-1"}, problems)
        r.ok = True
    finally:
        r.cleanup()


def receiver_retry_other(args):
    r = Run(args, lead_s=5.0, delay_s=0.0, extra=["--receivers", "2", "--outlets", "2"])
    try:
        r.start()
        a, b = r.topo.receivers
        deadline = r.t_post + r.lead_s + 20
        status = r.poster.post(a, r.frame_id(0), r.bodies[0], r.frames[0], deadline, retry=False)
        pid = r.topo.pids()["receiver-1"]
        os.kill(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        log(f"body 0 answered {status} by receiver-1; kill -9 receiver-1 pid={pid}")
        # Logplex did not see the answer (say): it re-sends the same request, which the
        # load balancer now routes to receiver B.
        retry = r.poster.post(b, r.frame_id(0), r.bodies[0], r.frames[0], deadline, retry=False)
        t_retry = time.monotonic()
        log(f"retry of body 0 (same frame id) on receiver-2 answered {retry} {t_retry - t_kill:.3f}s after the kill")
        r.post_all(range(1, len(r.bodies)), [b], deadline)
        want = r.expected()
        t_done = r.wait_all(want, 30)
        time.sleep(1.5)
        stats = r.counters(receivers=[1])
        problems = zero_counter_problems(stats)
        if not 200 <= retry < 300:
            problems.append(f"retry on receiver-2 answered {retry}, want 2xx")
        dup = stats.get("receiver2.duplicate_requests")
        if dup != 1:
            problems.append(f"receiver-2 duplicate_requests={dup}, want 1")
        rc = r.stop()
        if rc != 0:
            problems.append(f"run.sh exit status {rc}, want 0")
        r.verdict(want, t_kill, t_done, {"killed": "receiver-1", "retry_status": retry,
                                         "receiver2_duplicate_requests": f"{dup:g}"}, problems)
        r.ok = True
    finally:
        r.cleanup()


OUTAGE_S = 10.0


def redis_command_line(topo, index=1):
    """run.sh's redis-server command line (deploy/local/run.sh, "--- redis") of its Redis
    server `index` (1-based; the summary's index=, absent before --redis-servers), rebuilt
    from its summary line: same port, unix socket, dir (hence the same AOF) and log file.
    (Redis rewrites its process title, so /proc/PID/cmdline does not hold it.)"""
    fields = [dict(re.findall(r'(\w+)=("[^"]*"|\S+)', x)) for x in topo.lines]
    red = next((f for f in fields if f.get("component") == "redis" and int(f.get("index", "1")) == index), None)
    if not red or "unix" not in red or "addr" not in red:
        raise Failure(f"no redis line in run.sh's summary: {topo.lines}")
    sock = red["unix"]
    return [shutil.which("redis-server"), "--port", red["addr"].rsplit(":", 1)[1], "--bind", "127.0.0.1",
            "--unixsocket", sock, "--unixsocketperm", "700", "--dir", os.path.dirname(sock),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
            "--protected-mode", "yes", "--logfile", red["log"]]


def redis_outage(args):
    # Lead 30 s: the outage (10 s) and the recovery happen before the first window closes,
    # so no point is late (the receiver accepts points up to 60 s ahead, SEMANTICS §6.5).
    r = Run(args, lead_s=30.0, delay_s=0.0, extra=["--receivers", "2", "--outlets", "2", *SHORT_LEASES])
    try:
        r.start()
        deadline = r.t_post + r.lead_s + 20
        half = len(r.bodies) // 2
        r.post_all(range(half), r.topo.receivers, deadline)
        log(f"posted {half} bodies (all 2xx) in {time.monotonic() - r.t_post:.2f}s")
        pid = r.topo.pids()["redis"]
        cmdline = redis_command_line(r.topo)
        os.kill(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        log(f"kill -9 redis pid={pid}; restarting it in {OUTAGE_S:g}s with: {' '.join(cmdline)}")

        def restart():
            time.sleep(max(0.0, t_kill + OUTAGE_S - time.monotonic()))
            out = open(os.path.join(r.work, "redis-restarted.out"), "wb")
            p = subprocess.Popen(cmdline, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
            r.extra_procs.append(p)
            return time.monotonic()

        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            restarted = pool.submit(restart)
            time.sleep(1.0)  # the rest is posted while Redis is down
            first_2xx = []

            def post_rest():
                r.post_all(range(half, len(r.bodies)), r.topo.receivers, deadline)
                first_2xx.append(time.monotonic())

            post_rest()
            t_restart = restarted.result()
        t_all_acked = first_2xx[0]
        log(f"redis restarted {t_restart - t_kill:.2f}s after the kill; every remaining body acknowledged "
            f"{t_all_acked - t_restart:.2f}s after the restart; 503 answers {r.poster.status_503}, "
            f"transport errors {r.poster.transport_errors}")
        want = r.expected()
        t_done = r.wait_all(want, 60)
        time.sleep(1.5)
        stats = r.counters()
        problems = zero_counter_problems(stats)
        if r.poster.status_503 == 0:
            problems.append("no 503 answered while Redis was down")
        rc = r.stop()
        if rc != 0:
            problems.append(f"run.sh exit status {rc}, want 0")
        r.verdict(want, t_restart, t_done,
                  {"outage_s": f"{t_restart - t_kill:.2f}", "status_503": r.poster.status_503,
                   "transport_errors": r.poster.transport_errors,
                   "acked_after_restart_s": f"{t_all_acked - t_restart:.2f}"}, problems)
        r.ok = True
    finally:
        r.cleanup()


ONE_OF_THREE_OUTAGE_S = 5.0
ONE_OF_THREE_VICTIM = 1  # 1-based: redis-1, which also holds dm:outlets (the outlets' heartbeats)
# One-series probe bodies (count#e2e.probe.pK=1, one shard each) posted once while the server
# is down: those whose shard is on a live server must answer 2xx, the others 503. Which
# probes land where is fixed by the series hash (docs/redis-layout.md "Shard function").
PROBES = 12


def probe_body(k, when):
    msg = f"<190>1 {when.strftime('%Y-%m-%dT%H:%M:%S.%f+00:00')} host app web.1 - count#e2e.probe.p{k}=1".encode()
    return str(len(msg)).encode() + b" " + msg


def post_once(url, token, frame_id, body, resolution=RESOLUTION):
    """One POST of a one-frame drain body: the HTTP status, or the transport error's text."""
    req = urllib.request.Request(url + f"?resolution={resolution}", data=body, method="POST", headers={
        "Content-Type": "application/logplex-1",
        "Authorization": "Basic " + base64.b64encode(f"{token}:".encode()).decode(),
        "Logplex-Msg-Count": "1",
        "Logplex-Frame-Id": frame_id,
        "User-Agent": "Logplex/v72",
    })
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError as e:
        return repr(e)


def readyz(url):
    try:
        return D.http_get(url.replace("/logs", "/readyz"))[0]
    except urllib.error.HTTPError as e:
        return e.code
    except OSError as e:
        return repr(e)


def redis_one_of_three(args):
    # 3 Redis servers (shard s on server s % 3), 2 receivers, 2 outlets, short leases.
    # Lead 20 s: the 5 s outage and the recovery happen before the first window closes.
    r = Run(args, lead_s=20.0, delay_s=0.0,
            extra=["--receivers", "2", "--outlets", "2", "--redis-servers", "3", *SHORT_LEASES])
    try:
        r.start()
        if len(r.topo.redis) != 3:
            raise Failure(f"want 3 redis servers in run.sh's summary, got {r.topo.lines}")
        deadline = r.t_post + r.lead_s + 15
        half = len(r.bodies) // 2
        r.post_all(range(half), r.topo.receivers, deadline)
        log(f"posted {half} bodies (all 2xx) in {time.monotonic() - r.t_post:.2f}s")
        name = r.topo.redis[ONE_OF_THREE_VICTIM - 1]["process"]
        pid = r.topo.pids()[name]
        cmdline = redis_command_line(r.topo, ONE_OF_THREE_VICTIM)
        os.kill(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        log(f"kill -9 {name} pid={pid} (shards s % 3 == {ONE_OF_THREE_VICTIM - 1}); restarting it in "
            f"{ONE_OF_THREE_OUTAGE_S:g}s with: {' '.join(cmdline)}")

        def restart():
            time.sleep(max(0.0, t_kill + ONE_OF_THREE_OUTAGE_S - time.monotonic()))
            out = open(os.path.join(r.work, f"{name}-restarted.out"), "wb")
            p = subprocess.Popen(cmdline, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
            r.extra_procs.append(p)
            return time.monotonic()

        acked = {}  # body index -> monotonic time of its 2xx
        # Probes stamped inside the sample's span (same windows), written beside the bodies so
        # that the replay counts them too.
        probe_time = dt.datetime.fromtimestamp(r.last_close - SPAN_S / 2 - RESOLUTION - GRACE, dt.timezone.utc)
        probes = [probe_body(k, probe_time) for k in range(PROBES)]
        for k, b in enumerate(probes):
            path = os.path.join(r.work, "bodies", f"probe-{k:02d}.logplex")
            with open(path, "wb") as out:
                out.write(b)
            r.paths.append(path)

        def post_one(n, i):
            r.poster.post(r.topo.receivers[n % 2], r.frame_id(i), r.bodies[i], r.frames[i], deadline)
            acked[i] = time.monotonic()

        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            restarted = pool.submit(restart)
            time.sleep(1.0)  # the rest is posted while the server is down
            probe_status = [post_once(r.topo.receivers[k % 2], r.topo.token, f"{r.run_id}-probe-{k:02d}", b)
                            for k, b in enumerate(probes)]
            ready_during = [readyz(u) for u in r.topo.receivers]
            log(f"probes during the outage: {probe_status}; receivers' /readyz {ready_during}")
            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as posters:
                futures = [posters.submit(post_one, n, i) for n, i in enumerate(range(half, len(r.bodies)))]
                for fu in futures:
                    fu.result()
            t_restart = restarted.result()
        t_all_acked = max(acked.values())
        during = sum(1 for t in acked.values() if t < t_restart)
        # The probes answered 503 are retried now (same frame id), as Logplex would.
        for k, st in enumerate(probe_status):
            if st != 204 and st != 200:
                r.poster.post(r.topo.receivers[k % 2], f"{r.run_id}-probe-{k:02d}", probes[k], 1, deadline)
        log(f"{name} restarted {t_restart - t_kill:.2f}s after the kill; {during} of {len(acked)} bodies "
            f"acknowledged during the outage (bodies whose shards are all on the other servers), the rest "
            f"{t_all_acked - t_restart:.2f}s after the restart; 503 answers {r.poster.status_503}, "
            f"transport errors {r.poster.transport_errors}")
        want = r.expected()
        t_done = r.wait_all(want, 60)
        time.sleep(1.5)
        stats = r.counters()
        problems = zero_counter_problems(stats)
        if r.poster.status_503 == 0:
            problems.append(f"no 503 answered while {name} was down")
        probes_2xx = sum(1 for st in probe_status if st in (200, 204))
        probes_503 = sum(1 for st in probe_status if st == 503)
        if probes_2xx == 0 or probes_503 == 0 or probes_2xx + probes_503 != PROBES:
            problems.append(f"one-series probes during the outage answered {probe_status}: want 2xx for "
                            f"shards on the live servers and 503 for {name}'s, nothing else")
        # The shard map still holds after the restart (distributed_test.py's placement rules).
        placement, summary = D.check_placement(r.topo)
        for line in summary:
            log(f"redis {line}")
        problems += placement
        rc = r.stop()
        if rc != 0:
            problems.append(f"run.sh exit status {rc}, want 0")
        r.verdict(want, t_restart, t_done,
                  {"killed": name, "outage_s": f"{t_restart - t_kill:.2f}", "status_503": r.poster.status_503,
                   "transport_errors": r.poster.transport_errors, "acked_during_outage": during,
                   "probes_2xx": probes_2xx, "probes_503": probes_503,
                   "readyz_during_outage": "/".join(str(x) for x in ready_during),
                   "acked_after_restart_s": f"{t_all_acked - t_restart:.2f}"}, problems)
        r.ok = True
    finally:
        r.cleanup()


# --- helpers of the scenarios below -------------------------------------------------

LOCAL_LIBRATO_TOKEN = "e2e-api-token"  # run.sh passes LIBRATO_TOKEN to the outlets as this env var


def metrics_of(url):
    """The /metrics text of a receiver (its /logs URL) or an outlet (its /metrics URL); "" when down."""
    try:
        return D.http_get(url.replace("/logs", "/metrics"), timeout=3)[1]
    except (OSError, urllib.error.URLError):
        return ""


def log_lines(path, pattern):
    """The lines of a log file matching the regex `pattern`."""
    try:
        with open(path, errors="replace") as f:
            return [x.rstrip("\n") for x in f if re.search(pattern, x)]
    except OSError:
        return []


def start_service(r, kind, name, args):
    """Starts drainmet-`kind` (receiver, outlet or config) the way run.sh does (its own
    session, stdout NAME.out and stderr NAME.log in the topology dir), waits for its
    `listening` line and, for a receiver or an outlet, for /readyz 200. Returns
    (Popen, url): a receiver's /logs URL, an outlet's /metrics URL, a config service's
    HOST:PORT."""
    binary = os.path.join(r.args.binaries, kind, f"drainmet-{kind}")
    env = dict(os.environ)
    env["DRAINMET_LOCAL_LIBRATO_TOKEN"] = LOCAL_LIBRATO_TOKEN
    logf = os.path.join(r.topo.dir, f"{name}.log")
    offset = os.path.getsize(logf) if os.path.exists(logf) else 0
    with open(logf, "ab") as err, open(os.path.join(r.topo.dir, f"{name}.out"), "ab") as out:
        p = subprocess.Popen([binary, *args], stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                             start_new_session=True)
    r.extra_procs.append(p)
    pattern = "config service listening" if kind == "config" else f"drainmet-{kind} listening"
    until = time.monotonic() + 30
    addr = None
    while addr is None:
        with open(logf, "rb") as f:
            f.seek(offset)  # this process's lines only (a restart appends to the same log)
            lines = [x.decode(errors="replace") for x in f if pattern.encode() in x]
        for line in lines[:1]:
            m = re.search(r'(?:listen|port)="?([^" ]+)', line)
            if m:
                addr = m.group(1)
        if addr is None:
            if p.poll() is not None:
                raise Failure(f"{name} exited ({p.returncode}) at start; log {logf}")
            if time.monotonic() > until:
                raise Failure(f"{name}: no '{pattern}' line within 30s; log {logf}")
            time.sleep(0.05)
    if kind == "config":
        return p, addr if ":" in addr else f"127.0.0.1:{addr}"
    base = f"http://{addr}"
    while True:
        try:
            if D.http_get(base + "/readyz", timeout=2)[0] == 200:
                break
        except (OSError, urllib.error.URLError):
            pass
        if p.poll() is not None:
            raise Failure(f"{name} exited ({p.returncode}) before ready; log {logf}")
        if time.monotonic() > until:
            raise Failure(f"{name}: {base}/readyz not 200 within 30s")
        time.sleep(0.1)
    return p, base + ("/logs" if kind == "receiver" else "/metrics")


def service_args(r):
    """A receiver's or outlet's arguments as run.sh gives them (its config file)."""
    return ["--config", os.path.join(r.topo.dir, "config.yaml"), "--listen", "127.0.0.1:0",
            "--grpc-listen", "127.0.0.1:0", "--log-level", "info"]


def stop_procs(procs, timeout=30):
    """SIGTERM each process still running, then waits (SIGKILL past `timeout`); the exit statuses."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    out = []
    for p in procs:
        try:
            out.append(p.wait(timeout))
        except subprocess.TimeoutExpired:
            p.kill()
            out.append(p.wait())
    return out


def zero_counter_problems(stats):
    return [f"counter {k}={v:g}, want 0" for k, v in stats.items()
            if (".dropped." in k or k.endswith(".rejected") or k.endswith(".expired")) and v]


def outlet_stats(urls, names):
    """Per outlet: gauges by result, requests by result, windows by result."""
    stats = {}
    for url, name in zip(urls, names):
        text = metrics_of(url)
        for result in ("posted", "rejected", "expired"):
            stats[f"{name}.gauges.{result}"] = D.metric_sum(text, "drainmet_gauges_total", result=result)
        for result in ("2xx", "429", "5xx", "4xx", "transport"):
            stats[f"{name}.requests.{result}"] = D.metric_sum(text, "drainmet_output_requests_total", result=result)
        for result in ("acked", "abandoned", "lost"):
            stats[f"{name}.windows.{result}"] = D.metric_sum(text, "drainmet_outlet_windows_total", result=result)
    return stats


# --- outlet_sigstop -------------------------------------------------------------------

def outlet_sigstop(args):
    # As outlet_kill9, but the outlet with a request in flight is paused (SIGSTOP) past its
    # lease, its shards taken over, then resumed (SIGCONT): its renewals, marks and acks
    # carry its old fencing tokens and must be refused (RELIABILITY.md §3.3, "paused worker").
    r = Run(args, lead_s=5.0, delay_s=1.5,
            extra=["--receivers", "2", "--outlets", "2", "--shards", str(SHARDS), *SHORT_LEASES])
    try:
        r.start()
        r.post_all(range(len(r.bodies)), r.topo.receivers, r.t_post + r.lead_s + 20)
        log(f"posted {len(r.bodies)} bodies in {time.monotonic() - r.t_post:.2f}s")
        want = r.expected()
        victim, outlet_pids = outlet_with_request_in_flight(r)
        name = outlet_pids[victim]
        index = int(name.rsplit("-", 1)[1]) - 1
        survivor = 1 - index
        os.kill(victim, signal.SIGSTOP)
        t_stop = time.monotonic()
        log(f"SIGSTOP {name} pid={victim} with a request in flight ({r.librato.started} requests so far)")
        try:
            t_takeover, until = None, time.monotonic() + TAKEOVER_BOUND_S + 5
            while t_takeover is None and time.monotonic() < until:
                if D.metric_sum(metrics_of(r.topo.outlets[survivor]), "drainmet_outlet_leases_held") >= SHARDS:
                    t_takeover = time.monotonic()
                else:
                    time.sleep(0.05)
            # Paused a while longer: the survivor seals, posts and acks some of the windows the
            # paused one had claimed.
            time.sleep(PAUSE_AFTER_TAKEOVER_S)
        finally:
            os.kill(victim, signal.SIGCONT)
        t_cont = time.monotonic()
        takeover = f"{t_takeover - t_stop:.2f}" if t_takeover else "none"
        log(f"survivor outlet-{survivor + 1} held all {SHARDS} shards {takeover}s after the SIGSTOP; "
            f"SIGCONT {name} after {t_cont - t_stop:.2f}s")
        t_done = r.wait_all(want, 60)
        time.sleep(3.0)  # the resumed outlet's stale work, and any re-post, arrive
        logf = os.path.join(r.topo.dir, f"{name}.log")
        fenced = [x for x in log_lines(logf, r"fenced") if "shard lease lost" in x or "window abandoned" in x]
        stats = outlet_stats(r.topo.outlets, ["outlet1", "outlet2"])
        log("counters: " + " ".join(f"{k}={v:g}" for k, v in sorted(stats.items())))
        abandoned = stats[f"outlet{index + 1}.windows.abandoned"]
        held_after = D.metric_sum(metrics_of(r.topo.outlets[index]), "drainmet_outlet_leases_held")
        problems = zero_counter_problems(stats)
        if t_takeover is None or t_takeover - t_stop > TAKEOVER_BOUND_S:
            problems.append(f"takeover of the paused outlet's shards took {takeover}s, want <= {TAKEOVER_BOUND_S:g}s")
        if not fenced:
            problems.append(f"{name} logged no fencing refusal after SIGCONT ({logf}: no 'fenced' line)")
        for x in fenced[:6]:
            log(f"{name}: {x}")
        rc = r.stop()
        if rc != 0:
            problems.append(f"run.sh exit status {rc}, want 0")
        r.verdict(want, t_cont, t_done,
                  {"paused": name, "paused_s": f"{t_cont - t_stop:.2f}", "takeover_s": takeover,
                   "fencing_refusals_logged": len(fenced),
                   "windows_abandoned": f"{abandoned:g}", "leases_held_after": f"{held_after:g}"}, problems)
        r.ok = True
    finally:
        r.cleanup()


PAUSE_AFTER_TAKEOVER_S = 4.0


# --- redis_full -----------------------------------------------------------------------

REDIS_FULL_S = 8.0
REDIS_FULL_HEADROOM = 128 * 1024  # bytes of maxmemory above used_memory when the fault starts

WATERMARKS_KEY = "dm:wm"
WATERMARK_TTL_S = 1.0  # receiver.watermark_ttl_ms's default
HOLD_FLUSH = ["--flush-interval-ms", "1000", "--flush-delay-ms", "1000"]
HOLD_ALLOWANCE_S = 3  # config::ReceiverWriteAllowance: 1000 + command timeout 2000 ms


def post_held(url, token, frame_id, body, frames, out, timeout=120):
    """One POST (no retry) with a long timeout, for a request a paused receiver holds; its
    status (or the error) goes to out["status"]."""
    headers = {
        "Content-Type": "application/logplex-1",
        "Authorization": "Basic " + base64.b64encode(f"{token}:".encode()).decode(),
        "Logplex-Msg-Count": str(frames),
        "Logplex-Frame-Id": frame_id,
    }
    req = urllib.request.Request(url + f"?resolution={RESOLUTION}", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            out["status"] = resp.status
    except urllib.error.HTTPError as e:
        out["status"] = e.code
    except OSError as e:
        out["status"] = repr(e)


def sealed_by(outlet_url):
    _, text = D.http_get(outlet_url)
    return {by: D.metric_sum(text, "drainmet_outlet_windows_sealed_total", by=by) for by in ("watermark", "allowance")}


def receiver_sigstop(args):
    # Lead 25 s: every request waits for a 1-s flush, so posting the sample (8 at a time)
    # takes ~15 s; all of it must arrive before its window closes.
    r = Run(args, lead_s=25.0, delay_s=0.0,
            extra=["--receivers", "2", "--outlets", "1", "--shards", str(SHARDS), *HOLD_FLUSH])
    stopped_pid = None
    try:
        r.start()
        sock = r.topo.redis[0]["unix"]
        pid = r.topo.pids()["receiver-1"]
        a_url, b_url = r.topo.receivers[0], r.topo.receivers[1]
        if int(redis_call(sock, "HLEN", WATERMARKS_KEY)) != 2:
            raise Failure(f"want 2 receivers' watermarks in {WATERMARKS_KEY}, got "
                          f"{redis_call(sock, 'HGETALL', WATERMARKS_KEY)!r}")
        held = {}
        holder = threading.Thread(target=post_held, args=(a_url, r.topo.token, r.frame_id(0), r.bodies[0],
                                                          r.frames[0], held))
        holder.start()
        # Received and waiting for its flush (1 s): receiver-1's watermark is its receipt. (That
        # it was held past the seal shows in its late count below.)
        time.sleep(0.5)
        os.kill(pid, signal.SIGSTOP)
        stopped_pid = pid
        t_stop = time.monotonic()
        log(f"SIGSTOP receiver-1 pid={pid} holding body 0; posting bodies 1..{len(r.bodies) - 1} to receiver-2")
        r.post_all(range(1, len(r.bodies)), [b_url], r.t_post + r.lead_s + 30)
        want = r.expected(r.paths[1:])
        t_done = r.wait_all(want, 30)
        # Every window of the run past its close + allowance: body 0's records are late wherever they go.
        while time.time() < r.last_close + HOLD_ALLOWANCE_S + 1:
            time.sleep(0.1)
        entries = redis_call(sock, "HKEYS", WATERMARKS_KEY)
        seals = sealed_by(r.topo.outlets[0])
        os.kill(pid, signal.SIGCONT)
        stopped_pid = None
        t_cont = time.monotonic()
        holder.join(60)
        log(f"SIGCONT receiver-1 after {t_cont - t_stop:.1f}s; its held request answered {held.get('status')}")
        problems = []
        if held.get("status") not in (200, 202, 204):
            problems.append(f"held request answered {held.get('status')!r}, want 2xx (its points late)")
        if seals["watermark"] < 1:
            problems.append(f"no window sealed by the watermarks: {seals}")
        if len(entries) != 1:
            problems.append(f"{WATERMARKS_KEY} while receiver-1 was stopped: {entries!r}, want receiver-2's only")
        _, text = D.http_get(a_url.replace("/logs", "/metrics"))
        late = D.metric_sum(text, "drainmet_points_dropped_total", reason="late")
        if late <= 0:
            problems.append("receiver-1 counted no late point for the body it held past the seal")
        stats = r.counters(receivers=[1])
        problems += zero_counter_problems(stats)
        rc = r.stop()
        if rc != 0:
            problems.append(f"run.sh exit status {rc}, want 0")
        r.verdict(want, t_stop, t_done,
                  {"stopped_s": f"{t_cont - t_stop:.1f}", "late_points_receiver1": f"{late:g}",
                   "sealed_by_watermark": f"{seals['watermark']:g}",
                   "sealed_by_allowance": f"{seals['allowance']:g}"}, problems)
        r.ok = True
    finally:
        if stopped_pid:
            os.kill(stopped_pid, signal.SIGCONT)
        r.cleanup()


def receiver_kill9_watermark(args):
    r = Run(args, lead_s=3.0, delay_s=0.0, extra=["--receivers", "2", "--outlets", "1", "--shards", str(SHARDS)])
    try:
        r.start()
        sock = r.topo.redis[0]["unix"]
        pid = r.topo.pids()["receiver-1"]
        os.kill(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        left = int(redis_call(sock, "HLEN", WATERMARKS_KEY))
        log(f"kill -9 receiver-1 pid={pid}; {WATERMARKS_KEY} holds {left} entries")
        r.post_all(range(len(r.bodies)), [r.topo.receivers[1]], r.t_post + r.lead_s + 20)
        want = r.expected()
        t_done = r.wait_all(want, 30)
        close_to_done = time.time() - r.last_close
        entries = redis_call(sock, "HKEYS", WATERMARKS_KEY)
        seals = sealed_by(r.topo.outlets[0])
        problems = []
        if left != 2:
            problems.append(f"{WATERMARKS_KEY} right after the kill: {left} entries, want 2 (the dead one expires later)")
        if len(entries) != 1:
            problems.append(f"{WATERMARKS_KEY} after the run: {entries!r}, want receiver-2's only")
        if seals["watermark"] < 1:
            problems.append(f"no window sealed by the watermarks: {seals}")
        stats = r.counters(receivers=[1])
        problems += zero_counter_problems(stats)
        rc = r.stop()
        if rc != 0:
            problems.append(f"run.sh exit status {rc}, want 0")
        r.verdict(want, t_kill, t_done,
                  {"last_close_to_all_posted_s": f"{close_to_done:.2f}",
                   "sealed_by_watermark": f"{seals['watermark']:g}",
                   "sealed_by_allowance": f"{seals['allowance']:g}"}, problems)
        r.ok = True
    finally:
        r.cleanup()


def redis_info(sock, section="memory"):
    c = D.Resp(sock)
    try:
        raw = c.call("INFO", section).decode()
    finally:
        c.close()
    return dict(line.split(":", 1) for line in raw.splitlines() if ":" in line and not line.startswith("#"))


def redis_call(sock, *cmd):
    c = D.Resp(sock)
    try:
        return c.call(*cmd)
    finally:
        c.close()


def redis_full(args):
    # Lead 30 s: the full Redis and the recovery happen before the first window closes.
    r = Run(args, lead_s=30.0, delay_s=0.0, extra=["--receivers", "2", "--outlets", "2"])
    try:
        r.start()
        sock = r.topo.redis[0]["unix"]
        deadline = r.t_post + r.lead_s + 20
        half = len(r.bodies) // 2
        r.post_all(range(half), r.topo.receivers, deadline)
        used = int(redis_info(sock)["used_memory"])
        limit = used + REDIS_FULL_HEADROOM
        redis_call(sock, "CONFIG", "SET", "maxmemory-policy", "noeviction")
        redis_call(sock, "CONFIG", "SET", "maxmemory", str(limit))
        t_full = time.monotonic()
        log(f"posted {half} bodies (all 2xx); redis used_memory={used}: CONFIG SET maxmemory {limit} "
            f"(noeviction) for {REDIS_FULL_S:g}s")
        first = {}  # body index -> status of its first attempt
        acked = {}

        def post_one(n, i):
            url = r.topo.receivers[n % 2]
            first[i] = (post_once(url, r.topo.token, r.frame_id(i), r.bodies[i]), time.monotonic())
            if first[i][0] not in (200, 204):
                r.poster.post(url, r.frame_id(i), r.bodies[i], r.frames[i], deadline)
            acked[i] = time.monotonic()

        def free():
            time.sleep(max(0.0, t_full + REDIS_FULL_S - time.monotonic()))
            info = redis_info(sock)
            redis_call(sock, "CONFIG", "SET", "maxmemory", "0")
            log(f"CONFIG SET maxmemory 0 (unlimited); used_memory was {info['used_memory']}")
            return time.monotonic()

        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            freed = pool.submit(free)
            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as posters:
                futures = [posters.submit(post_one, n, i) for n, i in enumerate(range(half, len(r.bodies)))]
                for fu in futures:
                    fu.result()
            t_freed = freed.result()
        # First attempts made while Redis was full (the others started after the 8 posting
        # threads were freed from their retries).
        firsts = [st for st, t in first.values() if t < t_freed]
        ok_first = sum(1 for st in firsts if st in (200, 204))
        s503 = sum(1 for st in firsts if st == 503)
        other = [st for st, _ in first.values() if st not in (200, 204, 503)]
        during = sum(1 for t in acked.values() if t < t_freed)
        log(f"first attempts while full: {ok_first} x 2xx, {s503} x 503; other answers {other}; "
            f"{during} of {len(acked)} bodies acknowledged before maxmemory was raised; retries' 503s "
            f"{r.poster.status_503}; all acknowledged {max(acked.values()) - t_freed:.2f}s after")
        want = r.expected()
        t_done = r.wait_all(want, 60)
        time.sleep(1.5)
        stats = r.counters()
        problems = zero_counter_problems(stats)
        if s503 + r.poster.status_503 == 0:
            problems.append("no 503 answered while Redis was full")
        if other:
            problems.append(f"answers other than 2xx/503 while Redis was full: {other}")
        rc = r.stop()
        if rc != 0:
            problems.append(f"run.sh exit status {rc}, want 0")
        r.verdict(want, t_freed, t_done,
                  {"full_s": f"{t_freed - t_full:.2f}", "maxmemory": limit, "first_2xx_while_full": ok_first,
                   "first_503_while_full": s503, "retry_503": r.poster.status_503, "acked_while_full": during,
                   "acked_after_free_s": f"{max(acked.values()) - t_freed:.2f}"}, problems)
        r.ok = True
    finally:
        r.cleanup()


# --- librato_500 / librato_429 / librato_slow -------------------------------------------

def librato_fault(args, scenario):
    """The fake Librato misbehaves (500, 429 + Retry-After, or slow) for `fault_s` from the
    moment the first window can close, then answers 200 at once again."""
    if scenario == "librato_500":
        mode, fault_s = {"status": 500}, args.librato_500_s
    elif scenario == "librato_429":
        mode, fault_s = {"status": 429, "retry_after": args.retry_after_s}, args.librato_429_s
    else:
        mode, fault_s = {"status": 200, "delay_s": args.slow_s}, args.librato_slow_fault_s
    extra = ["--receivers", "2", "--outlets", "2"]
    if scenario == "librato_slow":
        extra += ["--shards", str(SHARDS)]  # fewer, bigger requests: 10 s each
    r = Run(args, lead_s=5.0, delay_s=0.0, extra=extra)
    try:
        r.start()
        r.librato.set_mode(**mode)
        t_fault = time.monotonic()
        r.post_all(range(len(r.bodies)), r.topo.receivers, r.t_post + r.lead_s + 20)
        log(f"posted {len(r.bodies)} bodies (all 2xx) in {time.monotonic() - r.t_post:.2f}s")
        want = r.expected()
        # Faulty for fault_s from the first window's close.
        first_close = r.last_close - SPAN_S
        time.sleep(max(0.0, first_close - time.time()) + fault_s)
        delivered_during = len(set(want) & set(D.index_gauges(r.librato.snapshot(), "librato")[0]))
        r.librato.set_mode(200)
        t_recover = time.monotonic()
        log(f"fault over after {t_recover - t_fault:.1f}s ({fault_s:g}s from the first close); "
            f"{r.librato.refused} requests refused, {delivered_during} of {len(want)} gauges applied meanwhile")
        t_done = r.wait_all(want, args.recover_bound_s)
        time.sleep(2.0)
        stats = r.counters()
        stats.update(outlet_stats(r.topo.outlets, ["outlet1", "outlet2"]))
        log("outlet requests: " + " ".join(f"{k}={v:g}" for k, v in sorted(stats.items()) if ".requests." in k))
        problems = zero_counter_problems(stats)
        figures = {"fault_s": f"{fault_s:g}", "refused": r.librato.refused,
                   "applied_during_fault": delivered_during,
                   "requests_5xx": f"{sum(v for k, v in stats.items() if k.endswith('.requests.5xx')):g}",
                   "requests_429": f"{sum(v for k, v in stats.items() if k.endswith('.requests.429')):g}",
                   "requests_transport": f"{sum(v for k, v in stats.items() if k.endswith('.requests.transport')):g}"}
        _, reposts, _ = D.index_gauges(r.librato.snapshot(), "librato")
        if scenario in ("librato_500", "librato_429") and reposts:
            problems.append(f"{reposts} gauges applied twice after {scenario}: want each exactly once")
        if scenario == "librato_429":
            gaps, unmatched = retry_gaps(r.librato.attempts_snapshot(), 429)
            figures["retries_after_429"] = len(gaps)
            figures["min_gap_after_429_s"] = f"{min(gaps):.2f}" if gaps else "none"
            figures["429_never_retried_identically"] = unmatched
            if not gaps:
                problems.append("no retry after a 429 arrived with the same body")
            elif min(gaps) < args.retry_after_s - 0.05:
                problems.append(f"a retry came {min(gaps):.2f}s after a 429 with Retry-After: "
                                f"{args.retry_after_s}, want >= {args.retry_after_s}")
        if scenario == "librato_slow":
            figures["slow_s"] = f"{args.slow_s:g}"
            timeouts = sum(v for k, v in stats.items() if k.endswith(".requests.transport"))
            figures["timeouts"] = f"{timeouts:g}"
            conc = max_concurrency(r.librato.attempts_snapshot())
            figures["max_concurrent_posts"] = conc
        rc = r.stop()
        if rc != 0:
            problems.append(f"run.sh exit status {rc}, want 0")
        r.verdict(want, t_recover, t_done, figures, problems)
        r.ok = True
    finally:
        r.cleanup()


def retry_gaps(attempts, status):
    """For every attempt answered `status`, the time from its answer to the next arrival of
    the same bytes: (gaps, answers never followed by an identical request)."""
    gaps, unmatched = [], 0
    for events in attempts.values():
        events.sort()
        for k, (arrival, st, answered) in enumerate(events):
            if st != status or answered is None:
                continue
            if k + 1 < len(events):
                gaps.append(events[k + 1][0] - answered)
            else:
                unmatched += 1
    return gaps, unmatched


def max_concurrency(attempts):
    edges = []
    for events in attempts.values():
        for arrival, _, answered in events:
            edges.append((arrival, 1))
            edges.append((answered if answered is not None else time.monotonic(), -1))
    edges.sort()
    cur = peak = 0
    for _, d in edges:
        cur += d
        peak = max(peak, cur)
    return peak


def librato_500(args):
    librato_fault(args, "librato_500")


def librato_429(args):
    librato_fault(args, "librato_429")


def librato_slow(args):
    librato_fault(args, "librato_slow")


# --- config_down ----------------------------------------------------------------------

CONFIG_DOWN_S = 10.0


def config_down(args):
    # run.sh's receiver and outlet read the config file; this scenario adds a receiver and an
    # outlet that follow the config service (--config-service), stops run.sh's outlet (so the
    # follower emits every window) and posts only to the follower receiver.
    r = Run(args, lead_s=20.0, delay_s=0.0, extra=["--receivers", "1", "--outlets", "1"])
    try:
        r.start()
        cfg_line = next(f for f in (dict(re.findall(r'(\w+)=("[^"]*"|\S+)', x)) for x in r.topo.lines)
                        if f.get("component") == "config")
        target = cfg_line["grpc"]
        follow = ["--config-service", target, "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0",
                  "--log-level", "info"]
        recv_p, recv_url = start_service(r, "receiver", "receiver-follower", follow)
        out_p, out_url = start_service(r, "outlet", "outlet-follower", follow)
        os.kill(r.topo.pids()["outlet-1"], signal.SIGTERM)  # releases its leases; the follower takes all
        until = time.monotonic() + 30
        while D.metric_sum(metrics_of(out_url), "drainmet_outlet_leases_held") < r.topo.shards:
            if time.monotonic() > until:
                raise Failure("the follower outlet does not hold every shard 30s after outlet-1 stopped")
            time.sleep(0.1)
        cfg_pid = r.topo.pids()["config"]
        os.kill(cfg_pid, signal.SIGKILL)
        t_kill = time.monotonic()
        log(f"followers up (receiver {recv_url}, outlet {out_url}, all shards on the follower); "
            f"kill -9 config pid={cfg_pid}")
        deadline = r.t_post + r.lead_s + 20
        r.post_all(range(len(r.bodies)), [recv_url], deadline)
        log(f"posted {len(r.bodies)} bodies (all 2xx) to the follower receiver while the config service is down")
        # A second drain token, added to the file while the service is down: the followers
        # see it only once the service is back and serves the new file.
        new_token = base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
        cfg = os.path.join(r.topo.dir, "config.yaml")
        text = open(cfg).read()
        h = "sha256:" + hashlib.sha256(new_token.encode()).hexdigest()
        text2 = re.sub(r'token_hashes: \["([^"]+)"\]', lambda m: f'token_hashes: ["{m.group(1)}", "{h}"]', text)
        if text2 == text:
            raise Failure("could not add a token hash to config.yaml")
        with open(cfg, "w") as f:
            f.write(text2)
        probe = probe_body(0, dt.datetime.now(dt.timezone.utc))
        st_down = post_once(recv_url, new_token, f"{r.run_id}-newtoken-down", probe)
        time.sleep(max(0.0, t_kill + CONFIG_DOWN_S - time.monotonic()))
        cfg_p, _ = start_service(r, "config", "config-restarted",
                                 ["--config", cfg, "--listen", target, "--log-level", "info"])
        t_restart, wall_restart = time.monotonic(), time.time()
        log(f"config service restarted on {target} {t_restart - t_kill:.2f}s after the kill; new token "
            f"answered {st_down} while it was down")
        t_follow, st_up = None, None
        until = time.monotonic() + 30
        while t_follow is None and time.monotonic() < until:
            accepted = probe_body(1, dt.datetime.now(dt.timezone.utc))
            st_up = post_once(recv_url, new_token, f"{r.run_id}-newtoken-{int(time.monotonic() * 1000)}",
                             accepted)
            if st_up in (200, 204):
                t_follow = time.monotonic()
                # Its point is emitted too: the replay counts it.
                path = os.path.join(r.work, "bodies", "probe-newtoken.logplex")
                with open(path, "wb") as f:
                    f.write(accepted)
                r.paths.append(path)
            else:
                time.sleep(0.2)
        # The outlet reconnects on its own backoff (up to 5 s): wait for its second update.
        out_log = os.path.join(r.topo.dir, "outlet-follower.log")
        until = time.monotonic() + 30
        while len(log_lines(out_log, "config updated")) < 2 and time.monotonic() < until:
            time.sleep(0.1)
        out_updated = log_lines(out_log, "config updated")
        out_follow_s = None
        if len(out_updated) >= 2:
            m = re.search(r"ts=(\S+)Z", out_updated[1])
            if m:
                t_line = dt.datetime.fromisoformat(m.group(1)).replace(tzinfo=dt.timezone.utc).timestamp()
                out_follow_s = t_line - wall_restart
        want = r.expected()
        t_done = r.wait_all(want, 30)
        time.sleep(1.5)
        text = metrics_of(recv_url)
        stats = {f"follower_receiver.dropped.{reason}": D.metric_sum(text, "drainmet_points_dropped_total",
                                                                     reason=reason)
                 for reason in ("late", "future", "series_limit")}
        stats.update(outlet_stats([out_url], ["follower_outlet"]))
        log("counters: " + " ".join(f"{k}={v:g}" for k, v in sorted(stats.items())))
        problems = zero_counter_problems(stats)
        if st_down not in (401, 403):
            problems.append(f"the new token answered {st_down} while the service was down, want 401/403")
        if t_follow is None:
            problems.append(f"the follower receiver did not accept the new token within 30s of the restart "
                            f"(last {st_up})")
        if len(out_updated) < 2:
            problems.append(f"the follower outlet logged 'config updated' {len(out_updated)} times, want 2 "
                            f"(start, and the changed file after the restart)")
        st = stop_procs([recv_p, out_p])
        if st != [0, 0]:
            problems.append(f"followers exited {st}, want 0")
        rc = r.stop()
        if rc != 0:
            problems.append(f"run.sh exit status {rc}, want 0")
        r.verdict(want, t_kill, t_done,
                  {"down_s": f"{t_restart - t_kill:.2f}", "new_token_while_down": st_down,
                   "new_token_after_restart": st_up,
                   "follow_after_restart_s": f"{t_follow - t_restart:.2f}" if t_follow else "none",
                   "outlet_follow_after_restart_s": f"{out_follow_s:.2f}" if out_follow_s is not None else "none"},
                  problems)
        r.ok = True
    finally:
        r.cleanup()


# --- soak -----------------------------------------------------------------------------

SOAK_ROUND_S = 10.0  # a round of the sample every 10 s ...
SOAK_LEAD_S = 20.0   # ... stamped 20-26 s ahead (no window closes during a fault of <= 10 s)
SOAK_FAULT_KINDS = ("outlet_kill9", "receiver_kill9", "outlet_sigstop", "redis_restart", "librato_500",
                    "librato_429")
# Peak RSS (VmHWM) allowed per process kind, MiB: the soak's load is one sample (16 059 points,
# ~1 700 series) every 10 s on 2 receivers, 2 outlets, 1 Redis. Measured over 10 minutes
# (docs/operations.md "Fault tests"): receivers 22, outlets up to 111 (growing linearly with
# the process's age, about 11 MiB a minute: an open problem, so a much longer soak fails this
# bound), Redis up to 66 (dedupe/sealed/done keys live 1-2 h), config 18.
RSS_BOUND_MB = {"receiver": 128, "outlet": 192, "redis": 192, "config": 64}


class SoakProcs:
    """The topology's processes by name, the restarted ones included; samples each one's
    VmHWM (peak RSS) every second."""

    def __init__(self, r):
        self.r = r
        self.lock = threading.Lock()
        self.pid = dict(r.topo.pids())  # name -> pid of the live process
        self.generation = {n: 1 for n in self.pid}
        self.peak_kb = {}  # "name#generation" -> max VmHWM seen, kB
        self.receivers = {f"receiver-{i + 1}": u for i, u in enumerate(r.topo.receivers)}
        self.outlets = {f"outlet-{i + 1}": u for i, u in enumerate(r.topo.outlets)}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self):
        n = 0
        while not self.stop.wait(1.0):
            rss = self.sample()
            n += 1
            if n % 60 == 0:  # the resident size of every live process once a minute: the slope
                log(f"soak minute {n // 60}: VmRSS MiB " +
                    " ".join(f"{k}={v / 1024:.1f}" for k, v in sorted(rss.items())))

    def sample(self):
        """Updates the peaks; returns the current VmRSS (kB) of each live process."""
        with self.lock:
            items = [(f"{n}#{self.generation[n]}", p) for n, p in self.pid.items() if p]
        rss = {}
        for key, pid in items:
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            kb = int(line.split()[1])
                            with self.lock:
                                self.peak_kb[key] = max(self.peak_kb.get(key, 0), kb)
                        elif line.startswith("VmRSS:"):
                            rss[key] = int(line.split()[1])
            except (OSError, ValueError):
                pass
        return rss

    def live_receivers(self):
        with self.lock:
            return [u for n, u in sorted(self.receivers.items()) if u]

    def set(self, name, pid, url=None, bump=False):
        with self.lock:
            self.pid[name] = pid
            if bump:
                self.generation[name] = self.generation.get(name, 1) + 1
            if name in self.receivers:
                self.receivers[name] = url
            if name in self.outlets:
                self.outlets[name] = url


def soak(args):
    r = Run(args, lead_s=SOAK_LEAD_S, delay_s=0.0, extra=["--receivers", "2", "--outlets", "2", *SHORT_LEASES])
    rng = random.Random(args.seed)
    procs = None
    try:
        r.start()  # restamps one copy (unused: each round restamps its own)
        procs = SoakProcs(r)
        duration = args.soak_minutes * 60.0
        t0 = time.monotonic()
        t_end = t0 + duration
        rounds = []  # (index, paths, last_close)
        status = {"503": 0, "transport": 0, "requests": 0, "rounds": 0}
        errors = []
        stat_lock = threading.Lock()

        def post(frame_id, body, frames, deadline):
            headers = {
                "Content-Type": "application/logplex-1",
                "Authorization": "Basic " + base64.b64encode(f"{r.topo.token}:".encode()).decode(),
                "Logplex-Msg-Count": str(frames), "Logplex-Frame-Id": frame_id, "User-Agent": "Logplex/v72",
            }
            attempt = 0
            while time.monotonic() < deadline:
                urls = procs.live_receivers()
                url = urls[(hash(frame_id) + attempt) % len(urls)] if urls else None
                attempt += 1
                if url is None:
                    time.sleep(0.2)
                    continue
                req = urllib.request.Request(url + f"?resolution={RESOLUTION}", data=body, headers=headers,
                                             method="POST")
                try:
                    with urllib.request.urlopen(req, timeout=10) as resp:
                        with stat_lock:
                            status["requests"] += 1
                        return resp.status
                except urllib.error.HTTPError as e:
                    if e.code != 503:
                        raise Failure(f"POST {url} frame {frame_id}: HTTP {e.code}: {e.read()[:200]!r}")
                    with stat_lock:
                        status["503"] += 1
                except OSError:
                    with stat_lock:
                        status["transport"] += 1
                time.sleep(0.2)
            raise Failure(f"frame {frame_id}: no 2xx before its deadline")

        def load():
            k = 0
            body_dir = os.path.join(r.work, "bodies")
            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
                while time.monotonic() < t_end:
                    t_round = t0 + k * SOAK_ROUND_S
                    time.sleep(max(0.0, t_round - time.monotonic()))
                    start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=SOAK_LEAD_S)
                    bodies, _ = D.restamp_all(r.restamp, r.originals, start, SPAN_S)
                    paths = []
                    for i, b in enumerate(bodies):
                        p = os.path.join(body_dir, f"r{k:04d}-{i:03d}.logplex")
                        with open(p, "wb") as out:
                            out.write(b)
                        paths.append(p)
                    rounds.append((k, paths, start.timestamp() + SPAN_S + RESOLUTION + GRACE))
                    deadline = time.monotonic() + SOAK_LEAD_S
                    futures = [pool.submit(post, f"{r.run_id}-r{k:04d}-{i:03d}", b,
                                           sum(1 for _ in r.restamp.frames(b)), deadline)
                               for i, b in enumerate(bodies)]
                    for fu in futures:
                        fu.result()
                    with stat_lock:
                        status["rounds"] += 1
                    k += 1

        def load_guard():
            try:
                load()
            except Exception as e:  # noqa: BLE001  (reported by the main thread)
                errors.append(e)

        faults = []  # (t, kind, detail)
        redis_cmd = redis_command_line(r.topo)

        def restart(kind, name):
            p, url = start_service(r, kind, name, service_args(r))
            procs.set(name, p.pid, url, bump=True)
            return p

        def inject(kind):
            t = time.monotonic()
            detail = ""
            if kind in ("outlet_kill9", "outlet_sigstop"):
                name = rng.choice(sorted(procs.outlets))
                pid = procs.pid[name]
                if kind == "outlet_kill9":
                    os.kill(pid, signal.SIGKILL)
                    procs.set(name, None, None)
                    time.sleep(1.0)
                    restart("outlet", name)
                    detail = f"{name} pid={pid} killed, restarted after 1 s"
                else:
                    os.kill(pid, signal.SIGSTOP)
                    time.sleep(LEASE_TTL_S + 3.0)
                    os.kill(pid, signal.SIGCONT)
                    detail = f"{name} pid={pid} stopped {LEASE_TTL_S + 3:g} s"
            elif kind == "receiver_kill9":
                name = rng.choice(sorted(procs.receivers))
                pid = procs.pid[name]
                procs.set(name, None, None)  # the load balancer stops routing to it ...
                os.kill(pid, signal.SIGKILL)  # ... as it dies (requests in flight fail: retried)
                time.sleep(1.0)
                restart("receiver", name)
                detail = f"{name} pid={pid} killed, restarted after 1 s"
            elif kind == "redis_restart":
                pid = procs.pid["redis"]
                os.kill(pid, signal.SIGKILL)
                procs.set("redis", None)
                time.sleep(3.0)
                with open(os.path.join(r.work, "redis-restarted.out"), "ab") as out:
                    p = subprocess.Popen(redis_cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
                r.extra_procs.append(p)
                procs.set("redis", p.pid, bump=True)
                detail = f"redis pid={pid} killed, restarted after 3 s"
            elif kind == "librato_500":
                r.librato.set_mode(500)
                time.sleep(10.0)
                r.librato.set_mode(200)
                detail = "500 for 10 s"
            elif kind == "librato_429":
                r.librato.set_mode(429, retry_after=2)
                time.sleep(10.0)
                r.librato.set_mode(200)
                detail = "429 Retry-After: 2 for 10 s"
            faults.append((t - t0, kind, detail))
            log(f"soak fault at {t - t0:.0f}s: {kind}: {detail}")

        loader = threading.Thread(target=load_guard, daemon=True)
        loader.start()
        k, bag = 1, []
        while time.monotonic() + 5 < t_end and not errors:
            time.sleep(max(0.0, t0 + k * args.fault_every_s - time.monotonic()))
            if time.monotonic() + 5 >= t_end or errors:
                break
            if not bag:  # a random order of every kind, refilled: each kind comes once per len(kinds) faults
                bag = list(SOAK_FAULT_KINDS)
                rng.shuffle(bag)
            inject(bag.pop())
            k += 1
        loader.join()
        if errors:
            raise Failure(f"load failed: {errors[0]}")
        t_load_end = time.monotonic()
        log(f"soak load over after {t_load_end - t0:.0f}s: {status['rounds']} rounds, {status['requests']} "
            f"requests acknowledged, 503 answers {status['503']}, transport errors {status['transport']}; "
            f"{len(faults)} faults")
        r.paths = [p for _, paths, _ in rounds for p in paths]
        r.last_close = max(c for _, _, c in rounds)
        r.bodies = r.paths  # the result line's body count
        want = r.expected()
        t_done = r.wait_all(want, args.recover_bound_s)
        time.sleep(2.0)
        procs.sample()
        stats = {}
        for name, url in sorted(procs.receivers.items()):
            text = metrics_of(url) if url else ""
            for reason in ("late", "future", "series_limit"):
                stats[f"{name}.dropped.{reason}"] = D.metric_sum(text, "drainmet_points_dropped_total", reason=reason)
        stats.update(outlet_stats([procs.outlets[n] for n in sorted(procs.outlets)], sorted(procs.outlets)))
        log("counters (processes alive at the end): " + " ".join(f"{k}={v:g}" for k, v in sorted(stats.items())))
        problems = zero_counter_problems(stats)
        peaks = {}
        for key, kb in sorted(procs.peak_kb.items()):
            kind = key.split("#")[0].rstrip("0123456789").rstrip("-")
            mb = kb / 1024.0
            peaks[key] = mb
            bound = RSS_BOUND_MB.get(kind)
            if bound is not None and mb > bound:
                problems.append(f"{key}: peak RSS {mb:.1f} MiB > bound {bound} MiB")
        log("peak RSS (VmHWM) MiB: " + " ".join(f"{k}={v:.1f}" for k, v in peaks.items()))
        procs.stop.set()
        restarted = [p for p in r.extra_procs if p.poll() is None and "redis-server" not in " ".join(p.args)]
        st = stop_procs(restarted)
        if any(s != 0 for s in st):
            problems.append(f"restarted receivers/outlets exited {st}, want 0")
        rc = r.stop()
        if rc != 0:
            problems.append(f"run.sh exit status {rc}, want 0")
        kinds = {}
        for _, kind, _ in faults:
            kinds[kind] = kinds.get(kind, 0) + 1
        by_kind = lambda pre: max((v for k, v in peaks.items() if k.startswith(pre)), default=0.0)  # noqa: E731
        r.verdict(want, t_load_end, t_done,
                  {"minutes": f"{args.soak_minutes:g}", "seed": args.seed, "rounds": status["rounds"],
                   "faults": len(faults), "fault_kinds": ",".join(f"{k}:{v}" for k, v in sorted(kinds.items())),
                   "status_503": status["503"], "transport_errors": status["transport"],
                   "peak_rss_mb_receiver": f"{by_kind('receiver'):.1f}",
                   "peak_rss_mb_outlet": f"{by_kind('outlet'):.1f}",
                   "peak_rss_mb_redis": f"{by_kind('redis'):.1f}",
                   "peak_rss_mb_config": f"{by_kind('config'):.1f}"}, problems)
        r.ok = True
    finally:
        if procs:
            procs.stop.set()
        r.cleanup()


SCENARIOS = {
    "outlet_kill9": outlet_kill9,
    "receiver_kill9_after_ack": receiver_kill9_after_ack,
    "receiver_retry_other": receiver_retry_other,
    "redis_outage": redis_outage,
    "redis_one_of_three": redis_one_of_three,
    "outlet_sigstop": outlet_sigstop,
    "receiver_sigstop": receiver_sigstop,
    "receiver_kill9_watermark": receiver_kill9_watermark,
    "redis_full": redis_full,
    "librato_500": librato_500,
    "librato_429": librato_429,
    "librato_slow": librato_slow,
    "config_down": config_down,
    "soak": soak,
}


def run_one(args, name):
    args.scenario = name
    t0 = time.monotonic()
    try:
        SCENARIOS[name](args)
    except Failure as e:
        log(f"FAIL {name}: {e}")
        return False
    log(f"PASS {name} in {time.monotonic() - t0:.1f}s")
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binaries", required=True, help="the build tree's services directory")
    ap.add_argument("--scenario", required=True, choices=sorted(SCENARIOS) + ["all"],
                    help="one scenario, or all: every scenario and then the soak, in sequence")
    ap.add_argument("--keep", action="store_true", help="keep the work dir after a pass")
    ap.add_argument("--librato-500-s", type=float, default=120.0,
                    help="librato_500: seconds of 500 answers from the first window's close (default 120, "
                         "the issue's 2 minutes)")
    ap.add_argument("--librato-429-s", type=float, default=20.0,
                    help="librato_429: seconds of 429 answers (default 20)")
    ap.add_argument("--retry-after-s", type=int, default=3, help="librato_429: its Retry-After (default 3)")
    ap.add_argument("--slow-s", type=float, default=10.0,
                    help="librato_slow: seconds before each answer (default 10, the issue's figure)")
    ap.add_argument("--librato-slow-fault-s", type=float, default=60.0,
                    help="librato_slow: seconds of slow answers from the first window's close (default 60)")
    ap.add_argument("--recover-bound-s", type=float, default=120.0,
                    help="librato_* and soak: bound of the wait for every gauge after the fault "
                         "(default 120: the outlets' backoff is capped at retry_max_backoff_ms, 60 s)")
    ap.add_argument("--soak-minutes", type=float, default=10.0, help="soak: minutes of load (default 10)")
    ap.add_argument("--fault-every-s", type=float, default=30.0, help="soak: seconds between faults (default 30)")
    ap.add_argument("--seed", type=int, default=None, help="soak: seed of the fault draw (default: random, logged)")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "big")
    log(PERSISTENCE_NOTE)
    if shutil.which("redis-server") is None:
        log("FAIL: redis-server not found in PATH (apt-get install redis-server)")
        return 1
    names = [n for n in SCENARIOS if n != "soak"] + ["soak"] if args.scenario == "all" else [args.scenario]
    failed = [n for n in names if not run_one(args, n)]
    if len(names) > 1:
        log(f"{len(names) - len(failed)} of {len(names)} passed" + (f"; failed: {' '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
