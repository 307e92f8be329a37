"""Snapshot and restore speed of sealvm: a guest with 512 MiB touched (one word
in every page, guest/touch.c) is written to /dev/shm and restored from there,
so the figures are about the VMM and memory, not a disk."""
import json
import os
import re
import subprocess
import time

from . import guest, procs

RESTORED = re.compile(r"restored .*: (\d+) pages in ([\d.]+) ms \(([\d.]+) GB/s read\)")
MEM_BYTES = {"1G": 1 << 30, "4G": 4 << 30}


def _ctl(cfg, sock, *args, timeout=120):
    cp = subprocess.run([cfg.sealvm, "ctl", "--timeout", str(timeout), sock] + list(args),
                        capture_output=True, text=True, timeout=timeout + 10)
    i = cp.stdout.find("{")
    return json.loads(cp.stdout[i:]) if i >= 0 else {"ok": False, "error": cp.stderr.strip()}


def _restore(cfg, work, tag, snap, state):
    """Restores snap in a fresh sealvm, returns what it says on stderr, then quits it."""
    sock, log = os.path.join(work, f"{tag}.sock"), os.path.join(work, f"{tag}.log")
    p = procs.spawn([cfg.sealvm, "run", "--restore", snap, "--serial", "none", "--control", sock,
                     "--state-dir", state], log)
    line = guest.wait_for(log, RESTORED.pattern, 120, p)
    if procs.alive(p):
        _ctl(cfg, sock, "quit", timeout=10)
        procs.reap(p, 10)
    procs.kill(p)
    m = line and RESTORED.search(line)
    if not m:
        return {"error": open(log, errors="replace").read()[-300:]}
    return {"pages": int(m[1]), "ms": float(m[2]), "gb_s_reported": float(m[3])}


def one_size(cfg, work, mem, runs, log):
    """Boots touch.elf once, then snapshots and restores it `runs` times."""
    tag, snap = f"snap-{mem}", cfg.snapshot_file
    serial, sock = os.path.join(work, f"{tag}.serial"), os.path.join(work, f"{tag}.sock")
    state = os.path.join(work, f"{tag}.state")
    p = procs.spawn([cfg.sealvm, "run", "--kernel", os.path.join(cfg.guests, "touch.elf"), "--cmdline", "ws=512",
                     "--mem", mem, "--serial", f"file:{serial}", "--control", sock, "--state-dir", state],
                    os.path.join(work, f"{tag}.log"))
    out = []
    try:
        if not guest.wait_for(serial, r"^TOUCHED", 60, p):
            return [{"mem": mem, "error": "touch.elf did not finish touching its working set"}]
        for i in range(runs):
            s = _ctl(cfg, sock, "snapshot", snap)
            size = os.path.getsize(snap) if os.path.exists(snap) else 0
            r = {"mem": mem, "run": i + 1, "snapshot": s, "file_bytes": size}
            if s.get("ok"):
                r["restore"] = _restore(cfg, work, f"{tag}-restore{i + 1}", snap, state)
            _rm(snap)
            out.append(_rates(r, MEM_BYTES[mem]))
            log(_line(out[-1]))
    finally:
        if procs.alive(p):
            _ctl(cfg, sock, "quit", timeout=10)
            procs.reap(p, 10)
        procs.kill(p)
        _rm(snap)
    return out


def _rates(r, ram):
    """GB/s two ways: bytes actually written or read, and RAM size covered."""
    s, rs = r["snapshot"], r.get("restore", {})
    if s.get("write_ms"):
        r["write_gb_s"] = s["bytes"] / s["write_ms"] / 1e6
        r["write_ram_gb_s"] = ram / s["write_ms"] / 1e6
    if rs.get("ms"):
        r["restore_gb_s"] = r["file_bytes"] / rs["ms"] / 1e6
        r["restore_ram_gb_s"] = ram / rs["ms"] / 1e6
    return r


def _line(r):
    s, rs = r["snapshot"], r.get("restore", {})
    if not s.get("ok") or "ms" not in rs:
        return f"{r['mem']} run {r.get('run')}: FAILED {s.get('error') or rs.get('error')}"
    return (f"{r['mem']} run {r['run']}: snapshot {s['bytes'] / 2**20:.0f} MiB in {s['write_ms']:.0f} ms "
            f"({r['write_gb_s']:.2f} GB/s written, {r['write_ram_gb_s']:.2f} GB/s of RAM, paused "
            f"{s.get('paused_ms', 0):.0f} ms); restore {rs['ms']:.0f} ms ({r['restore_gb_s']:.2f} GB/s read, "
            f"{r['restore_ram_gb_s']:.2f} GB/s of RAM)")


def _rm(path):
    for p in (path, path + ".tmp"):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def run(cfg, work, mems, runs, log):
    t = time.monotonic()
    out = []
    for mem in mems:
        out += one_size(cfg, work, mem, runs, log)
    log(f"snapshot/restore done in {time.monotonic() - t:.0f} s")
    return out
