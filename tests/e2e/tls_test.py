#!/usr/bin/python3
"""TLS on the drain listener of the real `drainmet run` binary, rotated with SIGHUP.

Issue "Hostile input, overload and faults" (Security): optional TLS on the receiver's
listener, certificate and key paths in config, reload on SIGHUP, tested with self-signed
pairs (docs/operations.md "TLS on the drain listener"). The unit tests
(tests/unit/common/http/tls_test.cpp) cover the server; this covers the binary: the config
keys, the SIGHUP handler of main(), and the process's own metrics.

Steps, each asserted:
  1. two self-signed pairs made with the openssl CLI (CN drainmet-one, drainmet-two; both
     for 127.0.0.1), and a third file pair that does not match (a key of another pair);
  2. `drainmet run --config` with tls_cert_file/tls_key_file of pair one: a drain POST over
     HTTPS, verified against pair one, answers 204; a plain-HTTP request gets no answer;
  3. the files are replaced by pair two and SIGHUP sent: a new connection presents pair
     two (verification against pair two passes, against pair one fails), the connection
     opened before still serves a second request; drainmet_tls_reloads_total{result="ok"} 1;
  4. a mismatched pair and SIGHUP: the process keeps serving pair two and counts
     result="error" once; its log names tls_key_file;
  5. SIGTERM: exit 0, the points of the POSTs are printed (stdout output), no token logged.

  tests/e2e/tls_test.py --binaries BUILD/services
Standard library only; needs the openssl command (deploy/bootstrap.sh installs it).
"""
import argparse
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

TOKEN = "tls-test-token-0123456789"


def log(msg):
    print(f"tls_test: {msg}", flush=True)


def make_pair(work, name, cn):
    cert, key = os.path.join(work, f"{name}.crt"), os.path.join(work, f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={cn}",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def install(src_cert, src_key, cert, key):
    """Replaces the served files atomically (as a Secret volume's symlink swap does)."""
    for src, dst in ((src_cert, cert), (src_key, key)):
        shutil.copyfile(src, dst + ".tmp")
        os.replace(dst + ".tmp", dst)


def context(ca_cert):
    ctx = ssl.create_default_context(cafile=ca_cert)
    ctx.check_hostname = False  # the pairs name 127.0.0.1 by IP; the chain is what is checked
    return ctx


def frame(msg):
    data = msg.encode()
    return f"{len(data)} ".encode() + data


def drain_body(n):
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    return b"".join(frame(f"<190>1 {now} host app web.1 - count#tls.probe=1 source=web.{i}") for i in range(n))


def post(conn, frame_id, n=3):
    auth = base64.b64encode(f"{TOKEN}:".encode()).decode()
    conn.request("POST", "/logs?resolution=60", body=drain_body(n),
                 headers={"Authorization": f"Basic {auth}", "Content-Type": "application/logplex-1",
                          "Logplex-Frame-Id": frame_id, "Logplex-Msg-Count": str(n)})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def metric(port, ca_cert, series):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context(ca_cert), timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def peer_subject(port, ca_cert):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context(ca_cert).wrap_socket(raw) as tls:
            return dict(x[0] for x in tls.getpeercert()["subject"])["commonName"]


def verifies(port, ca_cert):
    try:
        peer_subject(port, ca_cert)
        return True
    except ssl.SSLError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binaries", required=True, help="BUILD/services")
    args = ap.parse_args()
    binary = os.path.join(args.binaries, "standalone", "drainmet")
    if shutil.which("openssl") is None:
        sys.exit("tls_test: the openssl command is missing (deploy/bootstrap.sh installs it)")
    work = tempfile.mkdtemp(prefix="drainmet-tls.")
    failures = []

    def check(ok, what):
        log(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    proc = None
    try:
        one = make_pair(work, "one", "drainmet-one")
        two = make_pair(work, "two", "drainmet-two")
        three = make_pair(work, "three", "drainmet-three")
        cert, key = os.path.join(work, "tls.crt"), os.path.join(work, "tls.key")
        install(*one, cert, key)
        config = os.path.join(work, "config.yaml")
        with open(config, "w") as f:
            f.write(f"listen: 127.0.0.1:0\ntls_cert_file: {cert}\ntls_key_file: {key}\ngrace_seconds: 1\n"
                    "tenants:\n  - id: acme\n    output: stdout\n"
                    f"    token_hashes: [\"sha256:{hashlib.sha256(TOKEN.encode()).hexdigest()}\"]\n")
        err_path = os.path.join(work, "drainmet.log")
        out_path = os.path.join(work, "drainmet.out")
        proc = subprocess.Popen([binary, "run", "--config", config], stdout=open(out_path, "wb"),
                                stderr=open(err_path, "wb"), stdin=subprocess.DEVNULL)
        port = None
        deadline = time.monotonic() + 20
        while port is None and time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r'msg="drainmet listening".* listen=127\.0\.0\.1:(\d+)', open(err_path).read())
            port = int(m.group(1)) if m else None
            time.sleep(0.05)
        if port is None:
            sys.exit("tls_test: drainmet did not report listening:\n" + open(err_path).read())

        # 2. HTTPS with pair one; plain HTTP gets no answer.
        kept = http.client.HTTPSConnection("127.0.0.1", port, context=context(one[0]), timeout=10)
        check(post(kept, "F1") == 204, "POST over HTTPS (pair one) answered 204")
        check(peer_subject(port, one[0]) == "drainmet-one", "the listener presents pair one")
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            plain.request("GET", "/healthz")
            plain.getresponse()
            check(False, "plain HTTP on the TLS port gets no HTTP answer")
        except (http.client.HTTPException, ConnectionError, socket.timeout):
            check(True, "plain HTTP on the TLS port gets no HTTP answer")
        plain.close()

        # 3. Rotate to pair two with SIGHUP.
        install(*two, cert, key)
        proc.send_signal(signal.SIGHUP)
        rotated = False
        deadline = time.monotonic() + 10
        while not rotated and time.monotonic() < deadline:
            rotated = verifies(port, two[0])
            time.sleep(0.05)
        check(rotated, "after SIGHUP a new connection presents pair two")
        check(peer_subject(port, two[0]) == "drainmet-two", "its subject is drainmet-two")
        check(not verifies(port, one[0]), "a client trusting only pair one can no longer connect")
        check(post(kept, "F2") == 204, "the connection opened before the reload still serves")
        kept.close()
        check(metric(port, two[0], 'drainmet_tls_reloads_total{listener="http",result="ok"}') == 1,
              'drainmet_tls_reloads_total{listener="http",result="ok"} is 1')

        # 4. A key of another certificate: kept serving pair two, counted, logged.
        shutil.copyfile(three[1], key + ".tmp")
        os.replace(key + ".tmp", key)
        proc.send_signal(signal.SIGHUP)
        errors = None
        deadline = time.monotonic() + 10
        while errors != 1 and time.monotonic() < deadline:
            errors = metric(port, two[0], 'drainmet_tls_reloads_total{listener="http",result="error"}')
            time.sleep(0.05)
        check(errors == 1, 'a bad pair counts drainmet_tls_reloads_total{listener="http",result="error"} 1')
        check(peer_subject(port, two[0]) == "drainmet-two", "after the bad pair the listener still presents pair two")
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context(two[0]), timeout=10)
        check(post(conn, "F3") == 204, "and drains are still served")
        conn.close()
        check("tls_key_file" in open(err_path).read(), "the failed reload is logged naming tls_key_file")

        # 5. SIGTERM: exit 0, the points emitted, no token in the log.
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        check(rc == 0, f"SIGTERM: exit status 0 (got {rc})")
        emitted = 0
        for line in open(out_path):
            emitted += sum(g.get("value", 0) for g in json.loads(line)["gauges"]
                           if g["name"] == "tls.probe")
        check(emitted == 9, f"the 9 points of the three POSTs were emitted (got {emitted})")
        check(TOKEN not in open(err_path).read(), "the drain token is not logged")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if failures:
            log(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        log(f"{len(failures)} check(s) failed")
        return 1
    log("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
