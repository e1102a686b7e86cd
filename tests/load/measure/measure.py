#!/usr/bin/python3
"""Helper of tests/load/measure.sh: aggregates what the script collected and writes markdown.

Standard library only (Debian's python3). Subcommands:

  bench-table KIND OUT RUN.json...   min / median / max table of Google Benchmark JSON runs
                                     (KIND: replay or stages)
  merge-records OUT IN.json...       sums `drainmet-loadgen send --record` files (one sender per
                                     receiver) into one file for `sink --expect`
  json-get FILE KEY[.KEY...]         prints one value of a JSON file (empty when absent)
  receiver-tables OUT ROWDIR...      the receiver tables from the rows' raw files
  redis-bytes-table OUT ROWDIR...    bytes per single-value partial bucket
  memory-table OUT ROWDIR...         the receiver's memory with 1M live series

A row dir holds what measure.sh wrote: meta.env (KEY=VALUE), before.env and after.env (the
processes' CPU ticks, Redis INFO, the receivers' counters at the start and end of the timed
part), final.env (VmHWM, Redis peak, the outlet's CPU when every gauge was emitted, the
pts:<close> lists), send-N.json (`send --json`), check.json (`sink` /check).
"""

import json
import math
import os
import statistics
import sys


# --- small helpers -------------------------------------------------------------------

def read_env(path):
    out = {}
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, v = line.split("=", 1)
            out[k] = v
    return out


def num(d, key, default=None):
    v = d.get(key)
    if v is None or v == "":
        return default
    try:
        return float(v)
    except ValueError:
        return default


def read_json(path):
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def si(x, digits=3):
    """1234567 -> '1.23 M'; 12345 -> '12.3 k'; below 1000 as is."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    ax = abs(x)
    for div, unit in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if ax >= div:
            v = x / div
            return f"{v:.{max(0, digits - 1 - int(math.floor(math.log10(abs(v)))))}f}{unit}"
    if ax >= 100 or x == int(x):
        return f"{x:.0f}"
    return f"{x:.3g}"


def grouped(x):
    if x is None:
        return "—"
    return f"{int(round(x)):,}"


def fixed(x, nd=1):
    if x is None:
        return "—"
    return f"{x:.{nd}f}"


def mib(kib_or_bytes, unit="kB"):
    if kib_or_bytes is None:
        return None
    return kib_or_bytes / 1024.0 if unit == "kB" else kib_or_bytes / (1024.0 * 1024.0)


def three(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    return " / ".join(fmt(v) for v in (min(values), statistics.median(values), max(values)))


def three_si(values):
    """min / median / max with one unit chosen by the median (as docs/performance.md)."""
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    med = statistics.median(values)
    div, unit = 1.0, ""
    for d, u in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(med) >= d:
            div, unit = d, u
            break
    def f(v):
        v = v / div
        if v == 0:
            return "0"
        nd = max(0, 2 - int(math.floor(math.log10(abs(v))))) if abs(v) < 1000 else 0
        return f"{v:.{nd}f}"
    return " / ".join(f(v) for v in (min(values), med, max(values))) + unit


def alloc_fmt(values):
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    med = statistics.median(values)
    if med < 1e-4:
        return "0"
    return f"{med:.3g}"


# --- benchmarks ----------------------------------------------------------------------

def bench_table(kind, out, runs):
    by_name = {}
    order = []
    for path in runs:
        data = read_json(path)
        if not data:
            continue
        for b in data.get("benchmarks", []):
            if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
                continue
            name = b["name"]
            if name not in by_name:
                by_name[name] = []
                order.append(name)
            by_name[name].append(b)
    lines = []
    nruns = len(runs)
    if kind == "replay":
        lines.append(f"| benchmark | MB/s (min / median / max) | lines/s (min / median / max) | allocations per line (median) |")
        lines.append("|---|---|---|---|")
        for name in order:
            bs = by_name[name]
            mbs = [b.get("bytes_per_second", 0) / 1e6 for b in bs if "bytes_per_second" in b]
            lps = [b.get("lines/s") for b in bs]
            al = [b.get("allocs/line") for b in bs]
            lines.append(f"| `{name}` | {three(mbs, lambda v: f'{v:.0f}')} | {three_si(lps)} | {alloc_fmt(al)} |")
    else:
        lines.append("| benchmark | item | MB/s (min / median / max) | items/s (min / median / max) | other rates (median) | allocations per item (median) |")
        lines.append("|---|---|---|---|---|---|")
        std = {"name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
               "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit",
               "bytes_per_second", "items_per_second", "label", "error_occurred", "error_message",
               "aggregate_name", "aggregate_unit"}
        for name in order:
            bs = by_name[name]
            item = "—"
            allocs = []
            others = []
            for key in bs[0]:
                if key.startswith("allocs/"):
                    item = key[len("allocs/"):]
                    allocs = [b.get(key) for b in bs]
                elif key not in std and key.endswith("/s"):
                    others.append(f"{key} {si(statistics.median([b.get(key, 0) for b in bs]))}")
            mbs = [b["bytes_per_second"] / 1e6 for b in bs if "bytes_per_second" in b]
            ips = [b.get("items_per_second") for b in bs if "items_per_second" in b]
            label = bs[0].get("label", "")
            shown = f"`{name}`" + (f" ({label})" if label else "")
            lines.append(f"| {shown} | {item} | {three(mbs, lambda v: f'{v:.0f}') if mbs else '—'} | "
                         f"{three_si(ips)} | {', '.join(others) if others else '—'} | {alloc_fmt(allocs)} |")
    lines.append("")
    lines.append(f"{nruns} run(s); min / median / max over the runs.")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


# --- records -------------------------------------------------------------------------

def merge_records(out, inputs):
    merged = None
    tenants = {}
    for path in inputs:
        data = read_json(path)
        if data is None:
            raise SystemExit(f"merge-records: cannot read {path}")
        if merged is None:
            merged = {k: v for k, v in data.items() if k != "tenants"}
            for k in ("acknowledged_requests", "acknowledged_lines", "unacknowledged_requests",
                      "unacknowledged_lines"):
                merged[k] = 0
        for k in ("acknowledged_requests", "acknowledged_lines", "unacknowledged_requests",
                  "unacknowledged_lines"):
            merged[k] += data.get(k, 0)
        for t in data.get("tenants", []):
            slot = tenants.setdefault(t["tenant"], {"tenant": t["tenant"], "requests": 0, "lines": 0, "series": {}})
            slot["requests"] += t.get("requests", 0)
            slot["lines"] += t.get("lines", 0)
            for s in t.get("series", []):
                key = (s["name"], s.get("source", ""), s["kind"])
                cur = slot["series"].get(key)
                if cur is None:
                    slot["series"][key] = dict(s)
                else:
                    cur["points"] += s.get("points", 0)
                    cur["sum"] = cur.get("sum", 0) + s.get("sum", 0)
    if merged is None:
        raise SystemExit("merge-records: no input")
    merged["tenants"] = [
        {"tenant": t["tenant"], "requests": t["requests"], "lines": t["lines"], "series": list(t["series"].values())}
        for t in tenants.values()
    ]
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(merged, f)
    os.replace(tmp, out)
    # The series the run wrote (acknowledged), for "live series".
    print(sum(len(t["series"]) for t in merged["tenants"]))


def json_get(path, dotted):
    data = read_json(path)
    for part in dotted.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        else:
            data = None
            break
    if data is None:
        return ""
    if isinstance(data, bool):
        return "true" if data else "false"
    return str(data)


# --- receiver rows -------------------------------------------------------------------

class Row:
    def __init__(self, d):
        self.dir = d
        self.meta = read_env(os.path.join(d, "meta.env"))
        self.before = read_env(os.path.join(d, "before.env"))
        self.after = read_env(os.path.join(d, "after.env"))
        self.final = read_env(os.path.join(d, "final.env"))
        self.sends = []
        i = 1
        while os.path.exists(os.path.join(d, f"send-{i}.json")):
            s = read_json(os.path.join(d, f"send-{i}.json"))
            if s is not None:
                self.sends.append(s)
            i += 1
        self.check = read_json(os.path.join(d, "check.json"))
        self.hz = num(self.meta, "clk_tck", 100.0)
        self.receivers = int(num(self.meta, "receivers", 1))
        self.outlets = int(num(self.meta, "outlets", 1))

    def ticks(self, env, prefix, count):
        total = 0.0
        for i in range(1, count + 1):
            total += num(env, f"{prefix}_{i}", 0.0)
        return total

    def cpu_s(self, prefix, count):
        return (self.ticks(self.after, prefix, count) - self.ticks(self.before, prefix, count)) / self.hz

    @property
    def ok(self):
        return bool(self.sends)

    def s_sum(self, key):
        return sum(float(s.get(key, 0) or 0) for s in self.sends)

    @property
    def wall(self):
        walls = [float(s.get("wall_s", 0) or 0) for s in self.sends]
        return max(walls) if walls else None

    @property
    def window_wall(self):
        t0, t1 = num(self.before, "t"), num(self.after, "t")
        return t1 - t0 if t0 is not None and t1 is not None else None

    def rate(self, key):  # lines, points, bytes per second of the sum over senders
        w = self.wall
        return self.s_sum(key) / w if w else None

    def latency(self, q):
        vals = [s.get("latency_ms", {}).get(q) for s in self.sends]
        vals = [v for v in vals if v is not None]
        if not vals:
            return None
        if q == "p50":  # weighted by lines: an approximation when several senders ran
            weights = [float(s.get("lines", 0) or 0) for s in self.sends]
            tw = sum(weights)
            return sum(v * w for v, w in zip(vals, weights)) / tw if tw else statistics.mean(vals)
        return max(vals)  # p99, max: the worst sender's

    @property
    def receiver_cpu(self):
        return self.cpu_s("cpu_receiver", self.receivers)

    @property
    def records(self):
        return self.ticks(self.after, "records_receiver", self.receivers) - self.ticks(
            self.before, "records_receiver", self.receivers)

    @property
    def vmhwm_mib(self):
        vals = [num(self.final, f"vmhwm_receiver_{i}") for i in range(1, self.receivers + 1)]
        vals = [v for v in vals if v is not None]
        return max(vals) / 1024.0 if vals else None

    @property
    def redis_delta(self):
        a, b = num(self.after, "redis_used_memory"), num(self.before, "redis_used_memory")
        return a - b if a is not None and b is not None else None

    @property
    def records_held(self):
        """Partial buckets in the pts lists (not list elements: an element may be a batch)."""
        held = num(self.after, "pts_records")
        return held if held is not None else num(self.after, "pts_llen")  # runs before batches

    @property
    def bytes_per_record(self):
        """used_memory delta / records, when the outlet drained nothing during the run."""
        r, held, d = self.records, self.records_held, self.redis_delta
        if not r or d is None or held is None or int(held) != int(r):
            return None
        return d / r

    @property
    def list_bytes_per_record(self):
        r, held, lb = self.records, self.records_held, num(self.after, "pts_bytes")
        if not r or held is None or lb is None or int(held) != int(r):
            return None
        return lb / r

    @property
    def series(self):
        """Series written during the run (from the senders' records), else the nominal count."""
        return num(self.after, "series_written") or num(self.meta, "series")

    def check_text(self):
        c = self.check
        if not c:
            return "no check"
        if c.get("ok"):
            return f"ok ({grouped(c.get('series_ok'))} series)"
        return (f"FAILED: missing {grouped(c.get('missing_total'))}, extra {grouped(c.get('extra_total'))}, "
                f"conflicting {c.get('duplicates_conflicting')}, unacknowledged requests "
                f"{c.get('unacknowledged_requests')}")


def series_text(r):
    nominal, written = num(r.meta, "series"), num(r.after, "series_written")
    if written is None or nominal is None or int(written) == int(nominal):
        return grouped(nominal)
    return f"{grouped(nominal)} ({grouped(written)} written)"


def receiver_tables(out, rowdirs):
    rows = [Row(d) for d in rowdirs]
    rows = [r for r in rows if r.meta]
    L = []
    L.append("Throughput and latency (lines/s etc. over the senders' wall time; answer latency of "
             "every attempt, p99 and max the worst sender's when several ran):")
    L.append("")
    L.append("| row | receivers | sources | live series | rate | lines/s | points/s | MB/s | answer p50 / p99 / max | "
             "non-2xx / retries | conservation check |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r.meta
        if not r.ok:
            L.append(f"| {m.get('label')} | {r.receivers} | {grouped(num(m, 'sources'))} | {grouped(r.series)} | "
                     f"{m.get('rate')} | run failed (see {r.dir}) | | | | | |")
            continue
        non2xx = r.s_sum("non_2xx") + r.s_sum("transport_errors")
        L.append(
            f"| {m.get('label')} | {r.receivers} | {grouped(num(m, 'sources'))} | {series_text(r)} | "
            f"{m.get('rate')} | {grouped(r.rate('lines'))} | {grouped(r.rate('points'))} | "
            f"{fixed(r.rate('bytes') / 1e6 if r.rate('bytes') else None)} | "
            f"{fixed(r.latency('p50'))} / {fixed(r.latency('p99'))} / {fixed(r.latency('max'))} ms | "
            f"{grouped(non2xx)} / {grouped(r.s_sum('retries'))} | {r.check_text()} |")
    L.append("")
    L.append("CPU and memory (CPU: utime+stime from /proc/PID/stat at the start and end of the timed part; "
             "cores = CPU-s / the senders' wall time; receiver peak RSS = VmHWM; Redis: INFO memory):")
    L.append("")
    L.append("| row | receiver cores | lines per receiver CPU-s | receiver VmHWM | Redis cores | Redis CPU per record | "
             "Redis used_memory "
             "peak | records written (points a record) | Redis bytes per record (all / in lists) | "
             "Redis bytes per series in the window (run) | outlet CPU-s (until all emitted) | generator cores |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r.meta
        if not r.ok:
            continue
        w = r.wall
        rc = r.receiver_cpu
        redis_cpu = r.cpu_s("cpu_redis", 1)
        lines = r.s_sum("lines")
        points = r.s_sum("points")
        rec = r.records
        peak = num(r.final, "redis_used_memory_peak")
        gen_cpu = r.s_sum("cpu_user_s") + r.s_sum("cpu_sys_s")
        outlet_total = None
        if num(r.final, "cpu_outlet_1") is not None:
            outlet_total = (r.ticks(r.final, "cpu_outlet", r.outlets) - r.ticks(r.before, "cpu_outlet", r.outlets)) / r.hz
        bpr, lbpr = r.bytes_per_record, r.list_bytes_per_record
        per_series = r.redis_delta / r.series if (bpr is not None and r.series) else None
        if bpr is None:
            bytes_text = "n/a (outlet drained during the run)" if rec else "—"
        else:
            bytes_text = f"{bpr:.0f} / {lbpr:.0f}" if lbpr is not None else f"{bpr:.0f}"
        per_series_text = "—"
        if per_series is not None:
            per_series_text = f"{per_series:,.0f} ({rec / r.series:.1f} records a series in {w:.0f} s)"
        L.append(
            f"| {m.get('label')} | {fixed(rc / w if w else None, 2)} | {grouped(lines / rc if rc else None)} | "
            f"{fixed(r.vmhwm_mib)} MiB | {fixed(redis_cpu / w if w else None, 2)} | "
            f"{fixed(redis_cpu / rec * 1e6 if rec else None, 2)} µs | "
            f"{fixed(mib(peak, 'B'))} MiB | {grouped(rec)} ({fixed(points / rec if rec else None)}) | {bytes_text} | "
            f"{per_series_text} | {fixed(outlet_total, 1)} | {fixed(gen_cpu / w if w else None, 2)} |")
    L.append("")
    # Targets
    L.append("Targets of the issue \"Performance\" (receiver):")
    L.append("")
    def find(pred):
        for r in rows:
            if r.ok and pred(r):
                return r
        return None
    r10 = find(lambda r: r.meta.get("kind") == "procs" and r.receivers == 1)
    if r10 and r10.receiver_cpu:
        v = r10.s_sum("lines") / r10.receiver_cpu
        L.append(f"- ≥ 1.5 M lines per receiver CPU-second at 10 sources: {grouped(v)} "
                 f"({'met' if v >= 1.5e6 else 'not met'}).")
    r150 = find(lambda r: r.meta.get("kind") == "series" and r.series and abs(r.series - 150000) / 150000 < 0.01)
    if r150 and r150.receiver_cpu:
        v = r150.s_sum("lines") / r150.receiver_cpu
        L.append(f"- ≥ 1 M lines per receiver CPU-second at 150k live series: {grouped(v)} "
                 f"({'met' if v >= 1e6 else 'not met'}).")
    r70 = find(lambda r: r.meta.get("kind") == "p70")
    if r70:
        p99 = r70.latency("p99")
        L.append(f"- p99 answer < 50 ms at 70% of peak ({r70.meta.get('rate')} lines/s asked, "
                 f"{grouped(r70.rate('lines'))} sent): p99 {fixed(p99)} ms "
                 f"({'met' if p99 is not None and p99 < 50 else 'not met'}).")
    r1m = find(lambda r: r.meta.get("kind") == "series" and r.series and r.series >= 1e6)
    if r1m and r1m.vmhwm_mib is not None:
        L.append(f"- receiver RSS ≤ 256 MiB with 1M live series: VmHWM {fixed(r1m.vmhwm_mib)} MiB "
                 f"({'met' if r1m.vmhwm_mib <= 256 else 'not met'}).")
    L.append("")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(L) + "\n")


def redis_bytes_table(out, rowdirs):
    rows = [Row(d) for d in rowdirs]
    L = []
    L.append("| records of | records written | in pts lists | used_memory delta | bytes per record (all) | "
             "bytes in pts lists per record | dedupe keys (bytes each) | bytes per series per window |")
    L.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r.meta
        if not r.ok:
            L.append(f"| {m.get('label')} | run failed | | | | | | |")
            continue
        rec = r.records
        held = r.records_held
        delta = r.redis_delta
        lb = num(r.after, "pts_bytes")
        dd = num(r.after, "dedupe_keys")
        ddb = num(r.after, "dedupe_key_bytes")
        series = r.series
        bpr = delta / rec if rec and delta is not None else None
        per_series = delta / series if series and delta is not None else None
        note = "" if held is not None and int(held) == int(rec) else " (records left the lists: not valid)"
        elements = num(r.after, "pts_elements")
        in_lists = grouped(held) + (f" ({grouped(elements)} elements)" if elements is not None else "")
        L.append(f"| {m.get('label')} | {grouped(rec)} | {in_lists} | {grouped(delta)} B | {fixed(bpr)}{note} | "
                 f"{fixed(lb / rec if lb is not None and rec else None)} | {grouped(dd)} ({fixed(ddb, 0)}) | "
                 f"{fixed(per_series)} ({rec / series if series else 0:.2f} records a series) |")
    L.append("")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(L) + "\n")


def memory_table(out, rowdirs):
    rows = [Row(d) for d in rowdirs]
    L = []
    L.append("| live series (written in the run) | connections | lines/s | receiver VmHWM | receiver VmRSS at the end | "
             "max buffered buckets (queued / merged, sampled each second) | receiver cores | Redis used_memory peak | "
             "records written | Redis bytes per series in the window (run) | check |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r.meta
        if not r.ok:
            L.append(f"| {series_text(r)} | run failed | | | | | | | | | |")
            continue
        w = r.wall
        rss_end = num(r.after, "vmrss_receiver_1")
        peak = num(r.final, "redis_used_memory_peak")
        per_series = r.redis_delta / r.series if r.bytes_per_record is not None and r.series else None
        L.append(
            f"| {series_text(r)} | {m.get('connections')} | {grouped(r.rate('lines'))} | {fixed(r.vmhwm_mib)} MiB | "
            f"{fixed(rss_end / 1024 if rss_end else None)} MiB | {grouped(num(r.final, 'max_queued'))} / "
            f"{grouped(num(r.final, 'max_merged'))} | {fixed(r.receiver_cpu / w if w else None, 2)} | "
            f"{fixed(mib(peak, 'B'))} MiB | {grouped(r.records)} | "
            f"{grouped(per_series) if per_series is not None else 'n/a (outlet drained during the run)'} | "
            f"{r.check_text()} |")
    L.append("")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(L) + "\n")


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "bench-table":
        bench_table(args[0], args[1], args[2:])
    elif cmd == "merge-records":
        merge_records(args[0], args[1:])
    elif cmd == "json-get":
        print(json_get(args[0], args[1]))
    elif cmd == "receiver-tables":
        receiver_tables(args[0], args[1:])
    elif cmd == "redis-bytes-table":
        redis_bytes_table(args[0], args[1:])
    elif cmd == "memory-table":
        memory_table(args[0], args[1:])
    else:
        print(f"unknown subcommand {cmd}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
