#!/usr/bin/env python3
"""make bench BENCH=guard: what the integrity guard costs and how fast it detects (issue 13).

One host with its own swtpm, VMs of 256 MiB running the memory checker as fast as the
emulated vCPU lets it (rate=65535 light=1), and the guard:

  cost        the guard's CPU per round (its own thread CPU clock), back to back, with
              0, 1 and 4 VMMs: per VMM = (4 VMMs - 0 VMMs) / 4; the host check with a
              TPM quote every round and with none
  latency     a byte of a VMM's code patched through /proc/PID/mem at a random moment,
              for intervals of 50, 100 and 200 ms: time from the write to the host being
              marked untrusted (each trial: fresh VM, fresh TPM power cycle)
  slowdown    the guests' throughput (memcheck writes and checks per second of TSC time,
              summed over the VMs) in windows without the guard and with it at 100 ms,
              alternated (off, on, off, on...) so that drift in other load cancels; for 1
              and 4 VMs

Writes build/bench/guard.json and build/bench/guard.md. Environment: RUNS (latency
trials per interval, default 5), WINDOW (seconds per throughput window, default 15),
PAIRS (off/on pairs, default 3), ROUNDS (rounds per cost run, default 1000).
"""
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from lib import guest, procs  # noqa: E402

S = os.path.join(ROOT, "build/sealvm")
MEMCHECK = os.path.join(ROOT, "build/guest/memcheck.elf")
CERTS = os.path.join(ROOT, "build/certs/hosta")
OUT = os.path.join(ROOT, "build/bench")
RUNS = int(os.environ.get("RUNS", "5"))
WINDOW = float(os.environ.get("WINDOW", "15"))
PAIRS = int(os.environ.get("PAIRS", "3"))
ROUNDS = int(os.environ.get("ROUNDS", "1000"))

W = tempfile.mkdtemp(prefix="guard-bench.")
STATE = os.path.join(W, "hosta")
VMS = os.path.join(W, "vms")
GSOCK = os.path.join(W, "guard.sock")
tpm = {"proc": None, "port": 0}


def log(msg):
    print(msg, flush=True)


def run(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


def free_port_pair():
    while True:
        p = random.randint(20000, 40000)
        ok = True
        for q in (p, p + 1):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", q))
                except OSError:
                    ok = False
        if ok:
            return p


def tpm_start():
    """(Re)starts swtpm on the host's state: a TPM power cycle (PCRs zero, new event log)."""
    if tpm["proc"]:
        procs.kill(tpm["proc"])
    if not tpm["port"]:
        tpm["port"] = free_port_pair()
    p = tpm["port"]
    tpm["proc"] = procs.spawn(["swtpm", "socket", "--tpm2", "--tpmstate", "dir=" + os.path.join(W, "tpm"),
                               "--server", f"type=tcp,port={p},bindaddr=127.0.0.1",
                               "--ctrl", f"type=tcp,port={p + 1},bindaddr=127.0.0.1",
                               "--flags", "not-need-init,startup-clear"], os.path.join(W, "swtpm.log"))
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", p)) == 0:
                return f"swtpm:host=127.0.0.1,port={p}"
        time.sleep(0.05)
    raise SystemExit("swtpm did not start")


def setup():
    os.makedirs(os.path.join(W, "tpm"))
    os.makedirs(VMS)
    run(["swtpm_setup", "--tpm2", "--tpmstate", os.path.join(W, "tpm"), "--createek", "--overwrite"])
    spec = tpm_start()
    run([S, "admin", "keygen", "--out", os.path.join(W, "admin.pem")])
    run([S, "host", "init", "--state-dir", STATE, "--tpm", spec, "--name", "hosta",
         "--admin-key", os.path.join(W, "admin.pub.pem")])
    exe = run(["sha256sum", S]).stdout.split()[0]
    table = {"type": "sealvm-table", "version": 1, "serial": 1, "sealvm": [exe],
             "hosts": [{"name": "hosta", "ak": open(os.path.join(STATE, "ak.pem")).read(), "trust": 2}]}
    policy = {"type": "sealvm-policy", "version": 1, "serial": 1,
              "roles": [{"name": "admins", "principals": ["user:root"], "ops": ["*"]}]}
    for name, body in (("table", table), ("policy", policy)):
        with open(os.path.join(W, name + ".json"), "w") as f:
            json.dump(body, f)
        run([S, "admin", "sign", "--key", os.path.join(W, "admin.pem"), "--out", os.path.join(W, name + ".signed"),
             os.path.join(W, name + ".json")])


vms = {}


def start_vm(name, mem="256M", ws=200):
    out = os.path.join(W, name + ".out")
    p = procs.spawn([S, "run", "--kernel", MEMCHECK, "--cmdline", f"ws={ws} rate=65535 light=1", "--mem", mem,
                     "--serial", "file:" + out, "--control", os.path.join(VMS, name + ".sock"),
                     "--state-dir", os.path.join(W, name + ".state")], os.path.join(W, name + ".log"))
    if not guest.wait_for(out, r"^READY", 300, p):
        raise SystemExit(f"{name} did not start: {open(os.path.join(W, name + '.log')).read()[-1000:]}")
    vms[name] = (p, out)
    return p


def stop_vm(name):
    p, _ = vms.pop(name)
    subprocess.run([S, "ctl", "--timeout", "10", os.path.join(VMS, name + ".sock"), "quit"], capture_output=True)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        procs.kill(p)


def gctl(cmd):
    r = subprocess.run([S, "ctl", "--timeout", "10", GSOCK, cmd], capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else None


def start_guard(args):
    logp = os.path.join(W, "guard.log")
    p = procs.spawn([S, "guard", "--state-dir", STATE, "--vms", VMS, "--table", os.path.join(W, "table.signed"),
                     "--policy", os.path.join(W, "policy.signed"), "--tls-dir", CERTS, "--control", GSOCK,
                     "--audit-every", "60000"] + args, logp)
    if not guest.wait_for(logp, "watching", 30, p):
        raise SystemExit(f"the guard did not start: {open(logp).read()[-1000:]}")
    return p, logp


def stop_guard(p):
    if procs.alive(p):
        gctl("quit")
    p.wait(30)


CPU_LINE = re.compile(r"stopping after (\d+) rounds \((\d+) failed measurements\); CPU ([\d.]+) ms a round")


def cost_run(args):
    t0 = time.monotonic()
    p, logp = start_guard(["--interval", "0", "--rounds", str(ROUNDS)] + args)
    p.wait(1800)
    wall = time.monotonic() - t0
    m = CPU_LINE.search(open(logp).read())
    if not m or m[2] != "0":
        raise SystemExit(f"cost run {args}: {open(logp).read()[-2000:]}")
    return {"cpu_ms": float(m[3]), "wall_ms": wall * 1000 / ROUNDS}


def bench_cost():
    res = {}
    for n in (0, 1, 4):
        while len(vms) < n:
            start_vm(f"c{len(vms)}")
        while len(vms) > n:
            stop_vm(sorted(vms)[-1])
        res[f"vmms_{n}"] = cost_run([])
        log(f"cost: {n} VMMs: {res[f'vmms_{n}']['cpu_ms']:.3f} ms CPU a round")
    res["vmms_4_quote_every_round"] = cost_run(["--tpm-every", "1"])
    res["vmms_4_no_quote_no_self"] = cost_run(["--tpm-every", "1000000", "--no-self"])
    res["per_vmm_cpu_ms"] = (res["vmms_4"]["cpu_ms"] - res["vmms_0"]["cpu_ms"]) / 4
    res["quote_cpu_ms"] = res["vmms_4_quote_every_round"]["cpu_ms"] - res["vmms_4"]["cpu_ms"]
    for name in list(vms):
        stop_vm(name)
    return res


PATCH = r"""
import subprocess, sys, time
pid = int(sys.argv[1])
for l in open(f"/proc/{pid}/maps"):
    f = l.split()
    if len(f) >= 6 and f[2] == "00000000" and f[5].endswith("/sealvm"):
        base = int(f[0].split("-")[0], 16); break
sym = [l.split() for l in subprocess.run(["nm", f"/proc/{pid}/exe"], capture_output=True, text=True).stdout.splitlines()]
addr = base + next(int(s[0], 16) for s in sym if len(s) == 3 and s[2] == "cmd_guard")
with open(f"/proc/{pid}/mem", "r+b", buffering=0) as m:
    m.seek(addr); b = m.read(1); m.seek(addr); m.write(bytes([b[0] ^ 0xff]))
print(int(time.time() * 1000))
"""


def bench_latency():
    res = {}
    for iv in (50, 100, 200):
        lat = []
        for _ in range(RUNS):
            vm = start_vm("lat", mem="64M", ws=16)
            p, _ = start_guard(["--interval", str(iv)])
            for _ in range(300):
                m = gctl("measurements")
                if m and any(x["socket"].endswith("/lat.sock") and x["ok"] and x["measurements"] > 2
                             for x in m["processes"]):
                    break
                time.sleep(0.02)
            time.sleep(random.uniform(0, iv / 1000))
            t_write = int(subprocess.run([sys.executable, "-c", PATCH, str(vm.pid)], check=True, capture_output=True,
                                         text=True).stdout)
            at = None
            for _ in range(500):
                st = gctl("status")
                if st and st["state"] == "untrusted":
                    at = st["untrusted"]["at_ms"]
                    break
                time.sleep(0.01)
            if at is None:
                raise SystemExit(f"interval {iv}: the patch was not detected")
            lat.append(at - t_write)
            stop_guard(p)
            stop_vm("lat")
            run([S, "guard", "clear", "--state-dir", STATE])
            tpm_start()
        res[str(iv)] = {"ms": lat, "median": statistics.median(lat), "max": max(lat)}
        log(f"latency at {iv} ms: median {statistics.median(lat)} ms, max {max(lat)} ms ({lat})")
    return res


def cpu_s(pid):
    """CPU seconds (user + system) of a process so far, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / procs.CLK_TCK


def throughput(window):
    """Over the next window: writes and checks per second of guest TSC time, summed over the
    VMs, and writes per CPU second the VMM processes got (what the guests did with the CPU
    they had, whatever other load took)."""
    def last():
        return {n: guest.heartbeats(out)[-1] for n, (_, out) in vms.items()}

    def tsc(out):
        for ln in reversed(guest.lines(out)):
            m = re.match(r"^HB .* tsc_ms=(\d+)", ln)
            if m:
                return int(m[1])
        return 0
    a = last()
    ta = {n: tsc(out) for n, (_, out) in vms.items()}
    ca = {n: cpu_s(p.pid) for n, (p, _) in vms.items()}
    time.sleep(window)
    b = last()
    tb = {n: tsc(out) for n, (_, out) in vms.items()}
    cb = {n: cpu_s(p.pid) for n, (p, _) in vms.items()}
    w = sum((b[n]["writes"] - a[n]["writes"]) * 1000 / max(1, tb[n] - ta[n]) for n in vms)
    c = sum((b[n]["checks"] - a[n]["checks"]) * 1000 / max(1, tb[n] - ta[n]) for n in vms)
    per_cpu = sum(b[n]["writes"] - a[n]["writes"] for n in vms) / max(1e-9, sum(cb[n] - ca[n] for n in vms))
    for n, (_, out) in vms.items():
        if guest.bad_lines(out):
            raise SystemExit(f"{n}: the memory checker found bad pages")
    return w, c, per_cpu


def bench_slowdown():
    res = {}
    for n in (1, 4):
        while len(vms) < n:
            start_vm(f"t{len(vms)}")
        time.sleep(3)
        offs, ons, cpu = [], [], []
        for _ in range(PAIRS):
            offs.append(throughput(WINDOW) + (os.getloadavg()[0],))
            p, _ = start_guard(["--interval", "100"])
            time.sleep(2)
            ons.append(throughput(WINDOW) + (os.getloadavg()[0],))
            st = gctl("status")
            # ms of CPU a 100 ms round: the same number is the percentage of one core
            cpu.append(st["cpu_ms_per_round"] if st else None)
            if st and st["state"] != "trusted":
                raise SystemExit(f"false alarm while measuring throughput: {st}")
            stop_guard(p)
        w_off = statistics.mean(x[0] for x in offs)
        w_on = statistics.mean(x[0] for x in ons)
        c_off = statistics.mean(x[1] for x in offs)
        c_on = statistics.mean(x[1] for x in ons)
        # each "on" window against the "off" window just before it: neighbours share the
        # machine's other load better than the means do
        pairs = sorted(100 * (1 - on[0] / off[0]) for off, on in zip(offs, ons))
        eff = sorted(100 * (1 - on[2] / off[2]) for off, on in zip(offs, ons))
        q = statistics.quantiles(pairs, n=4) if len(pairs) >= 2 else [pairs[0]] * 3
        cpu_ok = [x for x in cpu if x is not None]
        res[f"vms_{n}"] = {"writes_per_s_off": w_off, "writes_per_s_on": w_on, "checks_per_s_off": c_off,
                           "checks_per_s_on": c_on, "writes_slowdown_pct": 100 * (1 - w_on / w_off),
                           "checks_slowdown_pct": 100 * (1 - c_on / c_off), "pair_slowdown_pct": pairs,
                           "pair_median_pct": statistics.median(pairs), "pair_iqr_pct": [q[0], q[2]],
                           "per_cpu_slowdown_pct": eff, "per_cpu_median_pct": statistics.median(eff),
                           "guard_cpu_ms_per_round": cpu,
                           "guard_core_pct": statistics.mean(cpu_ok) if cpu_ok else None,
                           "windows_off": offs, "windows_on": ons}
        log(f"slowdown, {n} VM(s): writes {100 * (1 - w_on / w_off):+.1f}% (pairs: median "
            f"{statistics.median(pairs):+.1f}%, {[round(x, 1) for x in pairs]}); writes per VMM CPU second: median "
            f"{statistics.median(eff):+.1f}% ({[round(x, 1) for x in eff]})")
    for name in list(vms):
        stop_vm(name)
    return res


def report(r):
    with open(os.path.join(OUT, "guard.json"), "w") as f:
        json.dump(r, f, indent=2)
    c, lat, sd = r["cost"], r["latency"], r["slowdown"]
    with open(os.path.join(OUT, "guard.md"), "w") as f:
        f.write(f"# Integrity guard on this machine ({r['time']}, load average at start {r['load']:.1f})\n\n")
        f.write("## CPU a round (guard thread, back to back, %d rounds, after the first)\n\n" % ROUNDS)
        f.write("| VMMs watched | CPU ms a round |\n|---|---|\n")
        for n in (0, 1, 4):
            f.write(f"| {n} (+ the guard itself, the host) | {c[f'vmms_{n}']['cpu_ms']:.3f} |\n")
        f.write(f"| 4, TPM quote every round | {c['vmms_4_quote_every_round']['cpu_ms']:.3f} |\n")
        f.write(f"| 4, no quote, guard not measuring itself | {c['vmms_4_no_quote_no_self']['cpu_ms']:.3f} |\n\n")
        f.write(f"One VMM costs {c['per_vmm_cpu_ms']:.3f} ms of CPU a round; a TPM quote and its verification "
                f"{c['quote_cpu_ms']:.3f} ms of the guard's CPU (swtpm's own not counted). At a 100 ms interval "
                f"with 4 VMMs the guard takes {c['vmms_4']['cpu_ms'] / 100 * 100:.1f}% of one core.\n\n")
        f.write("## Detection latency (code byte patched through /proc/PID/mem at a random moment)\n\n")
        f.write("| interval ms | median ms | max ms | trials |\n|---|---|---|---|\n")
        for iv, v in lat.items():
            f.write(f"| {iv} | {v['median']} | {v['max']} | {v['ms']} |\n")
        f.write("\n## Guest throughput without and with the guard (100 ms interval)\n\n")
        f.write("| VMs | writes/s off (mean) | writes/s on (mean) | slowdown of the means | slowdown, median of pairs "
                "(IQR) | writes per VMM CPU second: slowdown, median of pairs | guard CPU (% of one core) | "
                "guard CPU / 2 cores |\n|---|---|---|---|---|---|---|---|\n")
        for k, v in sd.items():
            core = v["guard_core_pct"] or 0.0
            f.write(f"| {k.split('_')[1]} | {v['writes_per_s_off']:.0f} | {v['writes_per_s_on']:.0f} | "
                    f"{v['writes_slowdown_pct']:+.1f}% | {v['pair_median_pct']:+.1f}% ({v['pair_iqr_pct'][0]:+.1f}% to "
                    f"{v['pair_iqr_pct'][1]:+.1f}%) | {v['per_cpu_median_pct']:+.1f}% | {core:.1f}% | {core / 2:.1f}% |\n")
        f.write(f"\n{PAIRS} alternating off/on windows of {WINDOW:.0f} s each; VMs of 256 MiB running memcheck "
                "ws=200 rate=65535 light=1 (as fast as the emulated vCPU goes; writes per second of guest TSC time, "
                "summed over the VMs). On this 2-core machine each vCPU keeps a core busy, so every cycle the guard "
                "takes can be a cycle some guest does not get: the guard's CPU share, halved for 2 cores, bounds "
                "the guests' loss. The windows' own spread comes from the other engineers' load on the machine "
                "(load average in guard.json) and is larger than the effect measured; writes per CPU second the VMM "
                "processes got separate what the guard does to a guest's speed from what it takes of the CPU.\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    r = {"time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": os.getloadavg()[0]}
    try:
        setup()
        which = sys.argv[1:] or ["cost", "latency", "slowdown"]
        r["cost"] = bench_cost() if "cost" in which else {}
        r["latency"] = bench_latency() if "latency" in which else {}
        r["slowdown"] = bench_slowdown() if "slowdown" in which else {}
        if set(which) < {"cost", "latency", "slowdown"} and os.path.exists(os.path.join(OUT, "guard.json")):
            # a partial run updates the parts it measured
            old = json.load(open(os.path.join(OUT, "guard.json")))
            for k in ("cost", "latency", "slowdown"):
                if not r[k]:
                    r[k] = old.get(k, {})
        if all(r[k] for k in ("cost", "latency", "slowdown")):
            report(r)
        else:
            print(json.dumps(r, indent=2))
    finally:
        procs.kill_all()
        shutil.rmtree(W, ignore_errors=True)


if __name__ == "__main__":
    main()
