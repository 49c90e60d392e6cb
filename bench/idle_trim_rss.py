# Memory after an ingest burst (issue 18): a `sibyl serve` binary on loopback takes a burst
# of /batch requests (1,000 events each, several client threads), then sits idle; the
# server's VmRSS (/proc/PID/status) is printed at the peak and after IDLE seconds, once
# with the idle trimmer off (--idle-trim-seconds 0) and once with it on (the default, 2 s).
# Figures: docs/BENCHMARKS.md, "HTTP server"; docs/SERVER.md, "Memory after bursts".
#   python3 bench/idle_trim_rss.py build/sibyl [--events 2000000] [--clients 8] [--idle 5]
import argparse, http.client, json, os, shutil, subprocess, tempfile, threading, time

ADMIN, INGEST = "admin-key-0123456789", "ingest-key-0123456789"

def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return -1

def body(first, n):
    events = [{"user_id": f"user-{(first + i) % 50000}", "event_type": f"Event {(first + i) % 17}",
               "time": 1_700_000_000_000 + (first + i) * 1000, "insert_id": f"ins-{first + i}",
               "event_properties": {"seq": first + i, "plan": "pro" if i % 3 else "free", "price": i % 97 + 0.5}}
              for i in range(n)]
    return json.dumps({"api_key": INGEST, "events": events}).encode()

def run(binary, trim_seconds, args):
    data = tempfile.mkdtemp(prefix="idle-trim-")
    env = dict(os.environ, SIBYL_ADMIN_KEY=ADMIN, SIBYL_INGEST_KEYS=INGEST)
    p = subprocess.Popen([binary, "--data", data, "--quiet", "serve", "--port", "0", "--no-scheduler",
                          "--no-request-log", "--idle-trim-seconds", str(trim_seconds)],
                         stderr=subprocess.PIPE, env=env, text=True)
    port, trims = None, []
    for line in p.stderr:
        j = json.loads(line)
        if j.get("event") == "started":
            port = j["port"]
            break
    def drain():
        for line in p.stderr:
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("event") == "memory_trim": trims.append(j)
    threading.Thread(target=drain, daemon=True).start()
    per_request = 1000
    requests = args.events // per_request
    bodies = [body(i * per_request, per_request) for i in range(min(requests, 64))]
    next_request, lock, peak = [0], threading.Lock(), [0.0]
    def client():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = next_request[0]
                next_request[0] += 1
            if i >= requests: return
            # Fresh insert_ids each time: a replayed body would be dropped as duplicates.
            b = bodies[i % len(bodies)].replace(b'"ins-', f'"r{i}-'.encode())
            while True:
                c.request("POST", "/batch", b, {"Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                if r.status != 429: break
                time.sleep(0.05)
            if r.status != 200: raise SystemExit(f"status {r.status}")
    started = time.time()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for t in threads: t.start()
    while any(t.is_alive() for t in threads):
        peak[0] = max(peak[0], rss_mb(p.pid))
        time.sleep(0.05)
    burst = time.time() - started
    end_rss = rss_mb(p.pid)
    time.sleep(args.idle)
    idle_rss = rss_mb(p.pid)
    p.terminate()
    p.wait(60)
    shutil.rmtree(data, ignore_errors=True)
    print(f"idle trim {'off' if trim_seconds == 0 else f'{trim_seconds:g} s'}: {args.events:,} events in {burst:.1f} s "
          f"({args.events / burst:,.0f} ev/s); RSS peak {peak[0]:.0f} MB, at the end of the burst {end_rss:.0f} MB, "
          f"after {args.idle:g} s idle {idle_rss:.0f} MB; trims: "
          + ", ".join(f"{t['rss_before_mb']:.0f} -> {t['rss_after_mb']:.0f} MB in {t['ms']:.0f} ms" for t in trims))

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--idle", type=float, default=5)
    args = ap.parse_args()
    for trim in (0, 2):
        run(args.binary, trim, args)
