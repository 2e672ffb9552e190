#!/usr/bin/env python3
"""Many concurrent paced streams through each proxy, side by side in one run.

Layout on 2 cores: the paced upstream and the client (both node, streamload.js) share CPU 0; the
proxy under test gets CPU 1 alone. For each target and each concurrency it reports what the client
saw (chunks/s, TTFT p50/p99, p99 of the largest gap inside a stream, errors) and what the proxy
cost: CPU seconds per 1,000 relayed chunks, and RSS idle and at peak. `steal_s` is the CPU time
the hypervisor took for other guests during the run: on a shared VM, a run with much of it is
skewed (repeat it).

Usage: stream_bench.py --targets direct,ceiling,astra,litellm,portkey --conns 100,500 --seconds 15
       [--astra 'CMD'] [--python PY] [--litellm BIN] [--portkey DIR] [--ttft-ms 100] [--chunks 50]
       [--interval-ms 20] [--path-model claude]   (astra agent ids: load, load-claude)
"""
import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "loopback")  # the one ceiling_passthru.py, shared with run_bench.py
UP = 18190
MASTER = "sk-" + "5f3c" * 16


def wait_port(port, timeout=60.0):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return time.monotonic() - start
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing on port {port} after {timeout}s")


def proc_tree(pid):
    """pid and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def cpu_s(pid):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in proc_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / tick


def steal_s():
    """CPU time the hypervisor gave to other guests, both cores together (/proc/stat `steal`)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def rss_mb(pid):
    total = 0
    for p in proc_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return round(total / 1024, 1)


def start(cmd, cpu, env=None, log=None):
    full = ["taskset", "-c", str(cpu)] + cmd
    return subprocess.Popen(full, stdout=log or subprocess.DEVNULL, stderr=log or subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, start_new_session=True)


def stop(p):
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(10)
    except Exception:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except Exception:
            pass


def client(url, model, conns, seconds, headers=()):
    cmd = ["taskset", "-c", "0", "node", os.path.join(HERE, "streamload.js"), "client", url, model,
           "--conns", str(conns), "--seconds", str(seconds)]
    for h in headers:
        cmd += ["--header", h]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", default="direct,ceiling,astra")
    ap.add_argument("--conns", default="100,500")
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--astra", default="astra")
    ap.add_argument("--litellm", default="litellm")
    ap.add_argument("--portkey", default=os.environ.get("PORTKEY_DIR", "portkey"))
    ap.add_argument("--ttft-ms", default="100")
    ap.add_argument("--chunks", default="50")
    ap.add_argument("--interval-ms", default="20")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="streambench-")
    up = start(["node", os.path.join(HERE, "streamload.js"), "upstream", str(UP), "--ttft-ms", a.ttft_ms,
                "--chunks", a.chunks, "--interval-ms", a.interval_ms], 0)
    wait_port(UP)
    cfg = os.path.join(tmp, "astra.yml")
    with open(cfg, "w") as f:
        f.write(f"""agents:
  - id: load
    model: {{provider: openai, modelId: load-model, endpoint: "http://127.0.0.1:{UP}"}}
  - id: load-claude
    model: {{provider: claude, modelId: load-model, endpoint: "http://127.0.0.1:{UP}", maxOutputTokens: 1024}}
""")
    lcfg = os.path.join(tmp, "litellm.yaml")
    with open(lcfg, "w") as f:
        f.write(f"""model_list:
  - model_name: load
    litellm_params: {{model: openai/load-model, api_base: "http://127.0.0.1:{UP}/v1", api_key: sk-load}}
  - model_name: load-claude
    litellm_params: {{model: anthropic/load-model, api_base: "http://127.0.0.1:{UP}", api_key: sk-load}}
litellm_settings: {{num_retries: 2, request_timeout: 120}}
""")
    targets = {
        "direct": (None, f"http://127.0.0.1:{UP}/v1/chat/completions", "load-model", (), None),
        "ceiling": ([a.python, os.path.join(SHARED, "ceiling_passthru.py"), f"http://127.0.0.1:{UP}", "18191"],
                    "http://127.0.0.1:18191/v1/chat/completions", "load-model", (), 18191),
        "astra": (shlex.split(a.astra) + ["serve", cfg, "--port", "18192"],
                  "http://127.0.0.1:18192/v1/chat/completions", "load", (), 18192),
        "astra-claude": (shlex.split(a.astra) + ["serve", cfg, "--port", "18192"],
                         "http://127.0.0.1:18192/v1/chat/completions", "load-claude", (), 18192),
        "litellm": ([a.litellm, "--config", lcfg, "--port", "18193", "--num_workers", "1"],
                    "http://127.0.0.1:18193/v1/chat/completions", "load", ("Authorization: Bearer " + MASTER,), 18193),
        "litellm-claude": ([a.litellm, "--config", lcfg, "--port", "18193", "--num_workers", "1"],
                           "http://127.0.0.1:18193/v1/chat/completions", "load-claude", ("Authorization: Bearer " + MASTER,), 18193),
        "portkey": (["node", os.path.join(a.portkey, "node_modules/@portkey-ai/gateway/build/start-server.js"), "--port", "18194"],
                    "http://127.0.0.1:8787/v1/chat/completions", "load-model",
                    ("x-portkey-provider: openai", f"x-portkey-custom-host: http://127.0.0.1:{UP}/v1",
                     "Authorization: Bearer sk-load"), 8787),
    }
    rows = []
    try:
        for name in a.targets.split(","):
            cmd, url, model, headers, port = targets[name]
            proc = None
            if cmd:
                log = open(os.path.join(tmp, name + ".log"), "w")
                t0 = time.monotonic()
                proc = start(cmd, 1, env={"OPENAI_API_KEY": "sk-load", "ANTHROPIC_API_KEY": "sk-load", "LITELLM_MASTER_KEY": MASTER}, log=log)
                ready = wait_port(port)
                # one warm request
                w = client(url, model, 2, 2, headers)
                w.communicate()
                time.sleep(1.0)
                idle = rss_mb(proc.pid)
            for conns in [int(c) for c in a.conns.split(",")]:
                c0 = cpu_s(proc.pid) if proc else 0.0
                s0 = steal_s()
                cl = client(url, model, conns, a.seconds, headers)
                peak = 0.0
                while cl.poll() is None:
                    if proc:
                        peak = max(peak, rss_mb(proc.pid))
                    time.sleep(0.5)
                out = cl.stdout.read().strip().splitlines()
                res = json.loads(out[-1]) if out else {"error": "no client output"}
                used = (cpu_s(proc.pid) - c0) if proc else None
                row = {"target": name, **res, "steal_s": round(steal_s() - s0, 2)}
                if proc:
                    row.update(cpu_s=round(used, 2), cpu_ms_per_1k_chunks=round(1e6 * used / max(res.get("chunks", 1), 1), 1),
                               cpu_util=round(used / res.get("seconds", a.seconds), 2), rss_idle_mb=idle, rss_peak_mb=peak,
                               ready_s=round(ready, 2))
                print(json.dumps(row), flush=True)
                rows.append(row)
            if proc:
                stop(proc)
                time.sleep(1)
    finally:
        stop(up)
    print(json.dumps({"summary": rows}))


if __name__ == "__main__":
    main()
