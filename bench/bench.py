#!/usr/bin/env python3
"""make bench: sealvm against QEMU 7.2 on this machine, migrating the same
memory-checker guest over loopback, next to the machine's own limits.

Usage: bench.py [full|quick|snapshot|smp|large|profile]  (bench/run.sh builds the tools first)
  full      limits; 1 GiB and 4 GiB x idle/64/512 MB/s x every system; a 2-vCPU VM
            (4 GiB, 64 MB/s) x every system; snapshots
  quick     limits; 4 GiB, 64 MB/s, every system once
  snapshot  limits; snapshot and restore of 1 GiB and 4 GiB guests
  smp       limits; a 2-vCPU VM (sealvm --cpus 2, QEMU -smp 2), 4 GiB, 64 MB/s, every system
  large     limits; a 12 GiB VM with 2.75 GiB touched (all a 32-bit guest reaches), idle:
            sealvm TLS with and without --reserve, QEMU plain with and without -mem-prealloc
  profile   a 4 GiB idle migration with sealvm TLS, with and without --reserve, under
            `perf record` at both ends: the top symbols of each end (build/bench/profile.md)

Systems: sealvm-tls, sealvm-tcp (insecure), sealvm-tls-reserve (destination started with
--reserve of the VM's size, waited for until populated), qemu-plain, qemu-tls,
qemu-tls-multifd, qemu-plain-prealloc and qemu-tls-prealloc (destination with -mem-prealloc).
Before every migration the host's memory is put in one known state: memtouch touches and
frees BENCH_TOUCH_GIB (8) GiB (0: skip), so first-touch costs do not depend on what ran before.

Environment knobs:
  RUNS (or BENCH_RUNS)  runs per case (full, smp and snapshot: 3; quick, large, profile: 1)
  BENCH_LIMIT_S         time limit of one migration, then cancel (120)
  BENCH_MEMS            VM sizes, e.g. "4G" (1G,4G)
  BENCH_LOADS           guest dirty rates in MB/s, 0 = idle (0,64,512)
  BENCH_SYSTEMS         e.g. "sealvm-tls,qemu-tls" (all five)
  BENCH_CPUS            vCPUs of the multi-vCPU cases (2); smp mode takes BENCH_MEMS and
                        BENCH_LOADS (4G, 64) for them
  BENCH_BEATS           guest heartbeats (1 s) to watch after a migration (3)
  BENCH_TOUCH_GIB       memory touched and freed before each migration (8; 0 = don't)
  BENCH_LARGE_MEM       the large case's VM size (12G)
  SEALVM_MIGRATE_ARGS   extra `sealvm ctl migrate` options, e.g. "--downtime-ms 300"
  SEALVM, QEMU          binaries (build/sealvm, qemu-system-x86_64)
Writes build/bench/results.{json,md,png}; logs and serial output in build/bench/logs/.
"""
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import guest, limits, procs, profile, report, snapshot, vmms  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:6.0f} s] {msg}", flush=True)


class Config:
    """Paths and knobs, from the environment."""

    def __init__(self, mode):
        env = os.environ.get
        b = os.path.join(ROOT, "build")
        self.mode = mode
        self.out = os.path.join(b, "bench")
        self.tools = self.out
        self.guests = os.path.join(b, "guest")
        self.certs = os.path.join(b, "certs")
        self.sealvm = env("SEALVM", os.path.join(b, "sealvm"))
        self.qemu = env("QEMU", "qemu-system-x86_64")
        self.sealvm_args = shlex.split(env("SEALVM_MIGRATE_ARGS", ""))
        self.runs = int(env("RUNS") or env("BENCH_RUNS") or (1 if mode in ("quick", "large", "profile") else 3))
        self.limit = float(env("BENCH_LIMIT_S", "120"))
        self.beats = int(env("BENCH_BEATS", "3"))
        full = mode == "full"
        self.mems = _list(env("BENCH_MEMS"), ["1G", "4G"] if full or mode == "snapshot" else
                          [env("BENCH_LARGE_MEM", "12G")] if mode == "large" else ["4G"])
        self.loads = [int(x) for x in _list(env("BENCH_LOADS"), ["0", "64", "512"] if full else
                                            ["0"] if mode in ("large", "profile") else ["64"])]
        self.smp_cpus = int(env("BENCH_CPUS", "2"))
        self.systems = _list(env("BENCH_SYSTEMS"), report.LARGE_SYSTEMS if mode == "large" else
                             report.PROFILE_SYSTEMS if mode == "profile" else report.SYSTEMS)
        self.touch_gib = float(env("BENCH_TOUCH_GIB", "8"))
        # the large case: everything a 32-bit guest can reach below its 3 GiB of low RAM
        self.ws_mib = 2816 if mode == "large" else 512
        self.snapshot_file = "/dev/shm/sealvm-bench.snap"
        self.qemu_tls = os.path.join(self.out, "qemu-tls")
        self.work = os.path.join(self.out, "logs")


def _list(v, default):
    return [x.strip() for x in v.split(",") if x.strip()] if v else default


def make_systems(cfg):
    every = {"sealvm-tls": lambda: vmms.Sealvm("sealvm-tls", "tls", cfg),
             "sealvm-tcp": lambda: vmms.Sealvm("sealvm-tcp", "tcp", cfg),
             "qemu-plain": lambda: vmms.Qemu("qemu-plain", False, 1, cfg),
             "qemu-tls": lambda: vmms.Qemu("qemu-tls", True, 1, cfg),
             "qemu-tls-multifd": lambda: vmms.Qemu("qemu-tls-multifd", True, 2, cfg),
             "sealvm-tls-reserve": lambda: vmms.Sealvm("sealvm-tls-reserve", "tls", cfg, reserve=True),
             "qemu-plain-prealloc": lambda: vmms.Qemu("qemu-plain-prealloc", False, 1, cfg, prealloc=True),
             "qemu-tls-prealloc": lambda: vmms.Qemu("qemu-tls-prealloc", True, 1, cfg, prealloc=True)}
    unknown = [s for s in cfg.systems if s not in every]
    if unknown:
        sys.exit(f"bench: unknown system(s) {unknown}; choose from {list(every)}")
    return [every[s]() for s in cfg.systems]


def qemu_tls_dir(cfg):
    """QEMU's tls-creds-x509 layout from scripts/mkcerts.sh's hosts: hostb is
    the server (destination), hosta the client (source); both verify the peer."""
    os.makedirs(cfg.qemu_tls, exist_ok=True)
    for src, dst in (("ca/ca.pem", "ca-cert.pem"), ("hostb/cert.pem", "server-cert.pem"),
                     ("hostb/key.pem", "server-key.pem"), ("hosta/cert.pem", "client-cert.pem"),
                     ("hosta/key.pem", "client-key.pem")):
        shutil.copyfile(os.path.join(cfg.certs, src), os.path.join(cfg.qemu_tls, dst))


def work_dir(cfg):
    """Logs under build/bench/logs, unless that path is too long for UNIX sockets."""
    shutil.rmtree(cfg.work, ignore_errors=True)
    os.makedirs(cfg.work)
    if len(cfg.work) > 60:
        cfg.work = tempfile.mkdtemp(prefix="sealvm-bench.")
    return cfg.work


# ---- one case: boot once, then migrate the running guest `runs` times ----

def boot_ready(system, work, tag, mem, cmdline, cfg, cpus):
    """Boots memcheck and waits until it has filled its working set and beaten
    twice, so the dirty rate it reports is established."""
    vm = system.boot(work, tag, mem, os.path.join(cfg.guests, "memcheck.elf"), cmdline, cpus)
    if not guest.wait_for(vm.serial, r"^READY", 120, vm.proc):
        system.stop(vm)
        raise RuntimeError(f"memcheck did not fill its working set under {system.name}")
    ready = guest.last_seq(vm.serial)
    if not guest.wait_hb_after(vm.serial, ready + 1, 10, vm.proc):
        system.stop(vm)
        raise RuntimeError("memcheck gave no heartbeat after READY")
    return vm


def touch_and_free(cfg):
    """Puts the host's memory in one known state (bench/tools/memtouch.c); its first-touch GB/s."""
    if cfg.touch_gib <= 0:
        return None
    cp = subprocess.run([os.path.join(cfg.tools, "memtouch"), str(cfg.touch_gib)], capture_output=True,
                        text=True, timeout=600)
    try:
        return json.loads(cp.stdout)["gb_s"]
    except (ValueError, KeyError):
        raise RuntimeError(f"memtouch failed: {cp.stderr.strip()[-200:]}")


def one_run(system, vm, work, tag, mem, cmdline, cfg, cpus):
    """Migrates vm to a new destination. Returns (result, the VM that runs the guest now)."""
    hb = guest.heartbeats(vm.serial)
    wrate = hb[-1]["wrate"] if hb else None
    touch = touch_and_free(cfg)
    dst = system.incoming(work, tag, mem, os.path.join(cfg.guests, "memcheck.elf"), cmdline, cpus)
    perf = profile.start(cfg, work, tag, vm, dst) if cfg.mode == "profile" else None
    try:
        r = system.migrate(vm, dst, cfg.limit)
    except Exception:
        system.stop(dst)
        raise
    finally:
        if perf:
            profile.stop(perf)
    if perf:
        r["profile"] = profile.report(perf)
    r["wrate_before"] = wrate
    r["first_touch_gb_s"] = touch
    r["dst_ready_s"] = r.get("dst_ready_s") or getattr(dst, "ready_s", None)
    src_last, cpu_last = guest.last_seq(vm.serial), guest.cpu_seqs(vm.serial)
    if r["guest_at"] == "destination":
        system.stop(vm)  # QEMU's source stays paused after the hand-over; sealvm's has exited
        now, where = dst, "destination"
    else:
        system.stop(dst)
        now, where = vm, "source"
        src_last, cpu_last = guest.last_seq(vm.serial), guest.cpu_seqs(vm.serial)
    r["check"] = guest.check(now.serial, src_last, cfg.beats, cfg.beats + 30, now.proc, cpus, cpu_last)
    r["check"]["where"] = where
    return r, (now if procs.alive(now.proc) else None)


def run_case(system, mem, rate, cfg, work, cpus=1):
    name = f"{mem}-{'idle' if rate == 0 else rate}-{system.name}" + (f"-{cpus}cpu" if cpus > 1 else "")
    cw = os.path.join(work, name)
    os.makedirs(cw)
    cmdline = f"ws={cfg.ws_mib} light=1 rate={rate} hb=1000"
    runs, vm, boots = [], None, 0
    try:
        for i in range(cfg.runs):
            try:
                if vm is None:
                    boots += 1
                    vm = boot_ready(system, cw, f"boot{boots}", mem, cmdline, cfg, cpus)
                r, vm = one_run(system, vm, cw, f"run{i + 1}", mem, cmdline, cfg, cpus)
            except Exception as e:  # a VMM failed: record it, start the next run from a fresh boot
                r = {"completed": False, "converged": False, "error": f"{type(e).__name__}: {e}"}
                with open(os.path.join(cw, "errors.log"), "a") as f:
                    traceback.print_exc(file=f)
                if vm is not None:
                    system.stop(vm)
                vm = None
            r["run"] = i + 1
            runs.append(r)
            log(f"{name} run {i + 1}: {describe(r)}")
    finally:
        if vm is not None:
            system.stop(vm)
    return {"mem": mem, "rate": rate, "cpus": cpus, "system": system.name, "secure": system.secure,
            "boots": boots, "runs": runs}


def describe(r):
    chk = r.get("check")
    verdict = ("no memory check" if not chk else f"memory check clean at the {chk['where']}" if chk["ok"]
               else f"MEMORY CHECK FAILED at the {chk['where']}: {chk.get('why')}")
    if not r.get("completed"):
        return f"not completed: {r.get('error')}; {verdict}"
    cpu = r["cpu"]
    return (f"total {r['total_ms'] / 1000:.2f} s, downtime {r['downtime_ms']:.0f} ms, "
            f"{r['bytes'] / 2**20:.0f} MiB, {r['throughput_mb_s']:.0f} MB/s, rounds {r.get('rounds')}, "
            f"converged {r['converged']}, CPU src {cpu['src']['whole']:.2f} s "
            f"({cpu['src']['other']:.2f} excl. vCPU) dst {cpu['dst']['whole']:.2f} s ({cpu['dst']['other']:.2f}), "
            f"wrate before {r.get('wrate_before')}, first touch {r.get('first_touch_gb_s')} GB/s, "
            f"destination ready in {r.get('dst_ready_s')} s, other work {r['foreign_cpu_share'] * 100:.0f}% of the CPUs; "
            f"{verdict}")


def matrix(cfg, work, lim):
    cases = []
    systems = make_systems(cfg)
    spec = []
    if cfg.mode in ("full", "quick", "large", "profile"):
        spec += [(mem, rate, 1) for mem in cfg.mems for rate in cfg.loads]
    if cfg.mode == "smp":
        spec += [(mem, rate, cfg.smp_cpus) for mem in cfg.mems for rate in cfg.loads]
    elif cfg.mode == "full":
        spec += [("4G", 64, cfg.smp_cpus)]
    for mem, rate, cpus in spec:
        for s in systems:
            c = run_case(s, mem, rate, cfg, work, cpus)
            streams = next((r["streams"] for r in c["runs"] if r.get("streams")), 1)
            c["streams"] = streams
            c["wire_limit_gb_s"] = limits.wire_limit(lim, s.secure, streams)
            cases.append(c)
    return cases


# ---- the run as a whole ----

def meta(cfg):
    def out(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return "?"
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    rev = out(["git", "rev-parse", "--short", "HEAD"]) + (" (uncommitted changes)" if out(["git", "status",
                                                          "--porcelain", "--untracked-files=no", "src"]) else "")
    return {"mode": cfg.mode, "date": time.strftime("%Y-%m-%d %H:%M %Z"), "cpu": cpu, "cores": os.cpu_count(),
            "kernel": platform.release(), "qemu": out([cfg.qemu, "--version"]).splitlines()[0],
            "openssl": out(["openssl", "version"]), "sealvm_rev": rev, "runs": cfg.runs, "limit_s": cfg.limit, "ws_mib": cfg.ws_mib,
            "touch_gib": cfg.touch_gib,
            "loadavg_start": open("/proc/loadavg").read().split()[0],
            "idle_share_start": round(procs.machine_idle_share(), 3)}


def notes(cfg, res):
    n = migration_notes(cfg, res) if res.get("cases") else []
    if res.get("snapshot"):
        n += ["Snapshot: `sealvm ctl SOCK snapshot /dev/shm/sealvm-bench.snap` of a guest running `touch.elf "
              "ws=512` (one word written in each of 131072 pages, so every one of them is carried), booted once per "
              "VM size and snapshotted once per run; restore: `sealvm run --restore FILE --serial none`, its time "
              "as sealvm prints it. GB/s written or read = snapshot bytes / time; GB/s of RAM = the VM's RAM size / "
              "time (zero pages are not stored, so this can exceed memcpy). The file lives in tmpfs, so each write "
              "also pays for first-touch of fresh tmpfs pages, slow on this machine (DESIGN.md §6). Snapshot files "
              "are deleted after each run."]
    n.append("Machine limits are measured with no VM running, best of two tries; during a migration the guest's "
             "vCPU holds one of the %d cores." % (os.cpu_count() or 0))
    return n


def migration_notes(cfg, res):
    extra = f", extra options {' '.join(cfg.sealvm_args)}" if cfg.sealvm_args else ""
    return [
        "Each case boots its guest once and then migrates the running guest `runs` times, each destination "
        "becoming the next source (ping-pong style; the working set is the same 512 MiB every time). A run that "
        "fails leaves the guest at its source, which the next run migrates; a VMM failure means a fresh boot.",
        "Only 127.0.0.1. sealvm: TLS 1.3 with mutual certificates (`tls://`) or the insecure `tcp://`, its "
        f"defaults otherwise (downtime target {_target(res, 'sealvm')} ms, auto-converge up to 99%, one "
        f"connection per core: {_streams(res, 'sealvm')}){extra}.",
        "QEMU 7.2: max-bandwidth raised to 100 GiB/s (its default is 32 MiB/s); downtime-limit left at its "
        f"default ({_target(res, 'qemu')} ms); auto-converge off (its default), so a guest that dirties memory "
        f"faster than QEMU sends never converges: after {cfg.limit:.0f} s the migration is cancelled and counted "
        "as not completed. TLS: tls-creds-x509 with verify-peer=on on both sides; multifd: 2 channels.",
        "Total time and downtime mean the same for both: from the migrate command (downtime: from the vCPU's "
        "stop at the source) until the guest runs at the destination. sealvm reports them itself; for QEMU they "
        "come from the host-clock timestamps of the source's STOP and the destination's RESUME QMP events. "
        "QEMU's own figures (source side only) are in results.json under `qemu`.",
        "Bytes: the migration stream as each VMM counts it (sealvm: bytes written to its sockets, TLS framing "
        "included; QEMU: RAM transferred, without TLS framing, ~0.1%).",
        "CPU seconds over the migration from /proc utime+stime of each whole process (and wait4() for a sealvm "
        "source, which exits at the hand-over). Under this machine's nested KVM a vCPU thread spins a core even "
        "when the guest idles, so each figure is also split into vCPU threads (QEMU: `CPU n/KVM` with "
        "debug-threads=on; sealvm: the thread that spins while the guest runs, found before the migration at the "
        "source and after it at the destination) and the rest, the migration's own cost. CPU per GiB = (source + "
        "destination) / GiB sent. sealvm's own migration-thread figures are in results.json under `vmm_cpu`.",
        "Before every migration `memtouch` touched and freed %s GiB of memory (one write per 4 KiB page), so each "
        "run starts from the same host memory state: recently freed memory, whose first touch runs at ~1–3 GB/s "
        "here, rather than memory the outer hypervisor never backed (~0.3 GB/s; DESIGN.md §6). Its first-touch "
        "rate is in results.json (`first_touch_gb_s`)." % (f"{cfg.touch_gib:g}" if cfg.touch_gib > 0 else "no"),
        "`sealvm-tls-reserve`: the destination runs `sealvm run --incoming ... --reserve SIZE` (SIZE = the VM's "
        "RAM) and the migration starts once `ctl status` shows the reservation populated; `qemu-*-prealloc`: the "
        "destination QEMU runs with `-mem-prealloc` and the migration starts once its QMP answers (after the "
        "preallocation). Both times are outside the migration (`dst_ready_s` in results.json). The one-core floor "
        "of a TLS migration is sealing and opening every byte sent once with AES-128-GCM (what sealvm negotiates) "
        "at this run's measured single-core rates.",
        f"After every migration the guest's memory checker runs on for {cfg.beats} heartbeats where the guest now "
        "runs: no BAD line, bad=0, heartbeats continuing. A full sweep of 512 MiB takes the checker about a minute "
        "on this machine's emulated CPU, so each window checks a part of it (pages_checked in results.json).",
        "Multi-vCPU cases (VM column \"×N vCPUs\"): sealvm `--cpus N`, QEMU `-smp N` at both ends, the same "
        "guest and command line. memcheck finds the CPUs (sealvm's MP table, QEMU's ACPI MADT), each CPU writes "
        "its share of the rate to its own pages and now and then to a shared region, and halts for the rest of a "
        "timer tick once it has worked half of it (its default duty=50 on several CPUs), so the guest takes about "
        "one core. The check then also needs every CPU's own heartbeat to continue. vCPU threads are QEMU's "
        "\"CPU n/KVM\" and sealvm's \"vcpuN\".",
    ]


def _streams(res, prefix):
    v = {c.get("streams") for c in res.get("cases", []) if c["system"].startswith(prefix)}
    return "/".join(str(x) for x in sorted(x for x in v if x)) or "?"


def _target(res, prefix):
    v = {r.get("downtime_target_ms") for c in res.get("cases", []) if c["system"].startswith(prefix)
         for r in c["runs"] if r.get("downtime_target_ms") is not None}
    return "/".join(str(x) for x in sorted(v)) or ("50" if prefix == "sealvm" else "300")


def interrupted(signum, frame):
    """SIGTERM/SIGHUP unwind like Ctrl-C, so main()'s finally kills every child."""
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else "full"
    if mode not in ("full", "quick", "snapshot", "smp", "large", "profile"):
        sys.exit(f"bench: unknown mode {mode!r} (full, quick, snapshot, smp, large or profile)")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    cfg = Config(mode)
    os.makedirs(cfg.out, exist_ok=True)
    work = work_dir(cfg)
    qemu_tls_dir(cfg)
    res = {"meta": meta(cfg)}
    log(f"bench {mode}: {cfg.runs} run(s) per case, logs in {work}")
    if res["meta"]["idle_share_start"] < 0.9:
        log(f"warning: the machine is only {res['meta']['idle_share_start'] * 100:.0f}% idle; figures will suffer")
    try:
        res["limits"] = limits.measure(cfg, log)
        if mode in ("full", "quick", "smp", "large", "profile"):
            res["cases"] = matrix(cfg, work, res["limits"])
        if mode in ("full", "snapshot"):
            res["snapshot"] = snapshot.run(cfg, work, cfg.mems, cfg.runs, log)
    finally:
        procs.kill_all()
        for p in (cfg.snapshot_file, cfg.snapshot_file + ".tmp"):
            if os.path.exists(p):
                os.unlink(p)
    res["meta"]["loadavg_end"] = open("/proc/loadavg").read().split()[0]
    res["meta"]["elapsed_s"] = round(time.monotonic() - T0)
    res["notes"] = notes(cfg, res)
    md = report.write(res, cfg.out)
    print(md)
    log(f"done: {cfg.out}/results.md, results.json" + (", results.png" if res.get("chart") else " (no chart)"))


if __name__ == "__main__":
    main()
