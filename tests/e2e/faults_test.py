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

usage: faults_test.py --binaries BUILD/services --scenario NAME [--keep]
"""
import argparse
import base64
import concurrent.futures
import datetime as dt
import glob
import http.server
import json
import os
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
    """POST /v1/metrics on 127.0.0.1:0: records every body on receipt (a body the real API
    received is applied even if the client dies before the answer), then waits `delay_s`
    before answering 200. Tracks the requests in flight and their client ports."""

    def __init__(self, delay_s=0.0):
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.bodies = []
        self.inflight = {}  # client port -> receipt time
        self.started = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                port = self.client_address[1]
                with outer.lock:
                    outer.bodies.append(body)
                    outer.inflight[port] = time.monotonic()
                    outer.started += 1
                try:
                    if outer.delay_s:
                        time.sleep(outer.delay_s)
                    reply = b"{}"
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the client died meanwhile
                finally:
                    with outer.lock:
                        outer.inflight.pop(port, None)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def snapshot(self):
        with self.lock:
            return list(self.bodies)

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

    def expected(self):
        rp = subprocess.run([self.drainmet, "replay", "--resolution", str(RESOLUTION), *self.paths],
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


def outlet_kill9(args):
    r = Run(args, lead_s=5.0, delay_s=1.5,
            extra=["--receivers", "2", "--outlets", "2", "--shards", str(SHARDS), *SHORT_LEASES])
    try:
        r.start()
        r.post_all(range(len(r.bodies)), r.topo.receivers, r.t_post + r.lead_s + 20)
        log(f"posted {len(r.bodies)} bodies in {time.monotonic() - r.t_post:.2f}s")
        want = r.expected()
        # Wait for a request in flight, then kill the outlet that sent it.
        pids = r.topo.pids()
        outlet_pids = {pids[f"outlet-{i}"]: f"outlet-{i}" for i in (1, 2)}
        victim, until = None, time.monotonic() + 60
        while victim is None and time.monotonic() < until:
            for port in r.librato.inflight_ports():
                victim = pid_of_client_port(port, outlet_pids)
                if victim:
                    break
            else:
                time.sleep(0.02)
        if victim is None:
            raise Failure("no outlet request in flight at the fake Librato within 60s")
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
        problems = []
        for k, v in stats.items():
            if (".dropped." in k or k.endswith(".rejected") or k.endswith(".expired")) and v:
                problems.append(f"counter {k}={v:g}, want 0")
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
        problems = [f"counter {k}={v:g}, want 0" for k, v in stats.items()
                    if (".dropped." in k or k.endswith(".rejected") or k.endswith(".expired")) and v]
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
        problems = [f"counter {k}={v:g}, want 0" for k, v in stats.items()
                    if (".dropped." in k or k.endswith(".rejected") or k.endswith(".expired")) and v]
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
        problems = [f"counter {k}={v:g}, want 0" for k, v in stats.items()
                    if (".dropped." in k or k.endswith(".rejected") or k.endswith(".expired")) and v]
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


def post_once(url, token, frame_id, body):
    """One POST of a one-frame drain body: the HTTP status, or the transport error's text."""
    req = urllib.request.Request(url + f"?resolution={RESOLUTION}", data=body, method="POST", headers={
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
        problems = [f"counter {k}={v:g}, want 0" for k, v in stats.items()
                    if (".dropped." in k or k.endswith(".rejected") or k.endswith(".expired")) and v]
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


SCENARIOS = {
    "outlet_kill9": outlet_kill9,
    "receiver_kill9_after_ack": receiver_kill9_after_ack,
    "receiver_retry_other": receiver_retry_other,
    "redis_outage": redis_outage,
    "redis_one_of_three": redis_one_of_three,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binaries", required=True, help="the build tree's services directory")
    ap.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    ap.add_argument("--keep", action="store_true", help="keep the work dir after a pass")
    args = ap.parse_args()
    log(PERSISTENCE_NOTE)
    if shutil.which("redis-server") is None:
        log("FAIL: redis-server not found in PATH (apt-get install redis-server)")
        return 1
    t0 = time.monotonic()
    try:
        SCENARIOS[args.scenario](args)
    except Failure as e:
        log(f"FAIL: {e}")
        return 1
    log(f"PASS {args.scenario} in {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
