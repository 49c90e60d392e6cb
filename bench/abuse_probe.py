# Issue 18's abuse scenarios, one at a time, against a `sibyl serve` binary on loopback
# (a fresh data directory each, no scheduler): how long /healthz or /metrics takes beside
# idle, half-sent, slowloris or keep-alive ingest connections, a 1 GiB gzip bomb (status,
# time, server RSS), and `Content-Length: -1`. Figures: docs/SERVER.md, "The HTTP server".
#   python3 bench/abuse_probe.py build/sibyl [idle half slowloris keepalive bomb negative]
import http.client, json, os, shutil, socket, subprocess, sys, tempfile, threading, time, zlib

binary = sys.argv[1]
ADMIN, INGEST = "admin-key-0123456789", "ingest-key-0123456789"

def start(extra=()):
    data = tempfile.mkdtemp(prefix="probe-")
    env = dict(os.environ, SIBYL_ADMIN_KEY=ADMIN, SIBYL_INGEST_KEYS=INGEST)
    p = subprocess.Popen([binary, "--data", data, "--quiet", "serve", "--port", "0", "--no-scheduler", "--no-request-log", *extra],
                         stderr=subprocess.PIPE, env=env, text=True)
    for line in p.stderr:
        j = json.loads(line)
        if j.get("event") == "started":
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            p.data_dir = data
            return p, j["port"]
    raise SystemExit("no start")

def stop(p):
    p.terminate()
    try: p.wait(30)
    except subprocess.TimeoutExpired: p.kill(); p.wait()
    shutil.rmtree(p.data_dir, ignore_errors=True)

def timed_get(port, path, timeout=200, headers={}):
    t = time.time()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path, headers=headers)
        r = c.getresponse(); r.read()
        return r.status, time.time() - t
    except Exception as e:
        return repr(e)[:40], time.time() - t

def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1]) / 1024
    return -1

def hwm_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM"): return int(line.split()[1]) / 1024
    return -1

def scenario_idle(n, half):
    p, port = start()
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        if half: s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    time.sleep(0.5)
    st, dt = timed_get(port, "/healthz", timeout=160)
    print(f"{n} {'half-sent request lines' if half else 'idle connections'}: /healthz {st} in {dt:.3f} s")
    for s in socks: s.close()
    stop(p)

def scenario_slowloris():
    p, port = start(["--threads", "4"])
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
    for s in socks: s.sendall(b"GET /healthz HTTP/1.1\r\n")
    stop_flag = [False]
    def drip():
        i = 0
        while not stop_flag[0]:
            for s in socks:
                try: s.sendall(b"X-%d: 1\r\n" % i)
                except OSError: pass
            i += 1; time.sleep(1)
    threading.Thread(target=drip, daemon=True).start()
    time.sleep(2)
    st, dt = timed_get(port, "/healthz", timeout=70)
    print(f"5 slowloris vs --threads 4: /healthz {st} in {dt:.3f} s")
    time.sleep(12)
    alive = 0
    for s in socks:
        try:
            s.sendall(b"X: 1\r\n"); time.sleep(0.2); s.sendall(b"X: 1\r\n"); alive += 1
        except OSError: pass
    print(f"   slowloris connections still open after 14 s: {alive}")
    stop_flag[0] = True
    stop(p)

def scenario_keepalive_ingest(clients=24, seconds=8):
    p, port = start()
    events = [{"user_id": f"user-{i%50}", "event_type": "E", "time": 1700000000000 + i, "insert_id": f"i{i}"} for i in range(1000)]
    stop_flag = [False]; acks = [0]
    def client(k):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        n = 0
        while not stop_flag[0]:
            body = json.dumps({"api_key": INGEST, "events": [dict(e, insert_id=f"{k}-{n}-{e['insert_id']}") for e in events]})
            try:
                c.request("POST", "/batch", body, {"Content-Type": "application/json"})
                r = c.getresponse(); r.read()
                if r.status == 200: acks[0] += 1
            except Exception:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            n += 1
    ts = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in ts: t.start()
    time.sleep(2)
    worst = 0; codes = set()
    for _ in range(5):
        st, dt = timed_get(port, "/metrics", timeout=30, headers={"Authorization": "Bearer " + ADMIN})
        codes.add(st); worst = max(worst, dt); time.sleep(1)
    stop_flag[0] = True
    print(f"{clients} keep-alive ingest clients: /metrics {codes} worst {worst:.3f} s of 5; {acks[0]} requests acknowledged")
    for t in ts: t.join(5)
    stop(p)

def scenario_bomb():
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 20)
    bomb = b"".join(z.compress(chunk) for _ in range(1024)) + z.flush()
    for path in ["/2/httpapi", "/batch"]:
        p, port = start()
        before = rss_mb(p.pid)
        t = time.time()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            c.request("POST", path, bomb, {"Content-Encoding": "gzip", "Content-Type": "application/json"})
            r = c.getresponse(); r.read(); st = r.status
        except Exception as e:
            st = repr(e)[:60]
        dt = time.time() - t
        print(f"gzip bomb ({len(bomb)} bytes -> 1 GiB, no api_key) on {path}: {st} in {dt:.3f} s; "
              f"RSS {before:.0f} -> {rss_mb(p.pid):.0f} MB, peak {hwm_mb(p.pid):.0f} MB")
        stop(p)

def scenario_negative_length():
    p, port = start()
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(60)
    t = time.time()
    s.sendall(b"POST /2/httpapi HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
    try: got = s.recv(200).split(b"\r\n")[0].decode()
    except Exception as e: got = repr(e)
    print(f"Content-Length: -1: '{got}' after {time.time()-t:.3f} s")
    stop(p)

which = sys.argv[2:] or ["idle", "half", "slowloris", "keepalive", "bomb", "negative"]
if "idle" in which: scenario_idle(200, False)
if "half" in which: scenario_idle(200, True)
if "slowloris" in which: scenario_slowloris()
if "keepalive" in which: scenario_keepalive_ingest()
if "bomb" in which: scenario_bomb()
if "negative" in which: scenario_negative_length()
