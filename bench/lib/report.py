"""results.json, results.md and the chart (gnuplot, png terminal)."""
import json
import os
import statistics
import subprocess


GIB = 1 << 30


def stat(values):
    """{median, min, max, n} of the values that exist, or None."""
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def _cpu(r, side, kind):
    c = r.get("cpu", {}).get(side)
    return c.get(kind) if c else None


def _per_gib(r, kind):
    """CPU seconds (source + destination) per GiB on the wire."""
    a, b = _cpu(r, "src", kind), _cpu(r, "dst", kind)
    if a is None or b is None or not r.get("bytes"):
        return None
    return (a + b) / (r["bytes"] / GIB)


def summarize(case):
    """Median and range of every figure over the runs that completed."""
    ok = [r for r in case["runs"] if r.get("completed")]
    s = {k: stat([r.get(k) for r in ok]) for k in ("total_ms", "downtime_ms", "bytes", "throughput_mb_s")}
    for side in ("src", "dst"):
        for kind in ("whole", "other"):
            s[f"cpu_{side}_{kind}"] = stat([_cpu(r, side, kind) for r in ok])
    s["cpu_per_gib_whole"] = stat([_per_gib(r, "whole") for r in ok])
    s["cpu_per_gib_other"] = stat([_per_gib(r, "other") for r in ok])
    s["vmm_cpu_src"] = stat([r.get("vmm_cpu", {}).get("src") for r in ok])
    s["vmm_cpu_dst"] = stat([r.get("vmm_cpu", {}).get("dst") for r in ok])
    s["wrate_before"] = stat([r.get("wrate_before") for r in case["runs"]])
    s["foreign_cpu_share"] = stat([r.get("foreign_cpu_share") for r in case["runs"]])
    s["runs"] = len(case["runs"])
    s["completed"] = len(ok)
    s["converged"] = sum(1 for r in case["runs"] if r.get("converged"))
    s["checked_ok"] = sum(1 for r in case["runs"] if r.get("check", {}).get("ok"))
    s["downtime_target_ms"] = next((r.get("downtime_target_ms") for r in case["runs"]
                                    if r.get("downtime_target_ms") is not None), None)
    return s


def _fmt(st, scale=1.0, digits=0):
    if not st:
        return "–"
    f = lambda x: f"{x * scale:.{digits}f}"
    if st["n"] == 1:
        return f(st["median"])
    return f"{f(st['median'])} [{f(st['min'])}–{f(st['max'])}]"


def _load_label(case):
    return "idle" if case["rate"] == 0 else f"{case['rate']} MB/s"


def _vm_label(mem, cpus):
    return mem if cpus == 1 else f"{mem} ×{cpus} vCPUs"


def _case_keys(res):
    """(mem, vCPUs, rate) of every case, smallest VM first, multi-vCPU cases after their size."""
    return sorted({(c["mem"], c.get("cpus", 1), c["rate"]) for c in res["cases"]},
                  key=lambda k: (k[1], int(k[0][:-1]), k[2]))


def migration_table(res):
    lim = res["limits"]
    out = ["| VM | guest load (achieved) | system × connections | done / conv. / check | total s | downtime ms | "
           "MiB sent | MB/s (% of limit) | CPU s src / dst (whole) | CPU s src + dst excl. vCPU | "
           "CPU s/GiB excl. vCPU (whole) | other work |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in res["cases"]:
        s = c["summary"]
        wr = s["wrate_before"]
        load = _load_label(c) + (f" ({wr['median']:.0f})" if wr and c["rate"] else "")
        tp = s["throughput_mb_s"]
        limit = c["wire_limit_gb_s"] * 1000
        tps = f"{_fmt(tp)} ({tp['median'] / limit * 100:.0f}%)" if tp else "–"
        other = stat([a + b for a, b in zip(_vals(c, "src", "other"), _vals(c, "dst", "other"))])
        out.append(f"| {_vm_label(c['mem'], c.get('cpus', 1))} | {load} | {c['system']} ×{c.get('streams', 1)} | {s['completed']}/{s['runs']} · "
                   f"{s['converged']}/{s['runs']} · {s['checked_ok']}/{s['runs']} | {_fmt(s['total_ms'], 1e-3, 2)} | "
                   f"{_fmt(s['downtime_ms'], 1, 0)} | {_fmt(s['bytes'], 1 / 2**20, 0)} | {tps} | "
                   f"{_fmt(s['cpu_src_whole'], 1, 2)} / {_fmt(s['cpu_dst_whole'], 1, 2)} | {_fmt(other, 1, 2)} | "
                   f"{_fmt(s['cpu_per_gib_other'], 1, 2)} ({_fmt(s['cpu_per_gib_whole'], 1, 2)}) | "
                   f"{_fmt(s['foreign_cpu_share'], 100, 0)}% |")
    return out


def _vals(case, side, kind):
    return [_cpu(r, side, kind) for r in case["runs"] if r.get("completed") and _cpu(r, side, kind) is not None]


PAIRS = [("sealvm-tls", "qemu-tls"), ("sealvm-tls", "qemu-tls-multifd"), ("sealvm-tcp", "qemu-plain"),
         ("sealvm-tls-reserve", "qemu-plain-prealloc"), ("sealvm-tls-reserve", "qemu-tls-prealloc"),
         ("sealvm-tls", "qemu-plain"), ("sealvm-tls-reserve", "sealvm-tls")]


def ratio_table(res):
    by = {(c["mem"], c.get("cpus", 1), c["rate"], c["system"]): c["summary"] for c in res["cases"]}
    out = ["| VM | guest load | sealvm / QEMU | total time | downtime | CPU per GiB excl. vCPU | CPU per GiB whole |",
           "|---|---|---|---|---|---|---|"]
    for mem, cpus, rate in _case_keys(res):
        for a, b in PAIRS:
            sa, sb = by.get((mem, cpus, rate, a)), by.get((mem, cpus, rate, b))
            if not sa or not sb:
                continue
            cells = [_ratio(sa, sb, k) for k in ("total_ms", "downtime_ms", "cpu_per_gib_other", "cpu_per_gib_whole")]
            load = "idle" if rate == 0 else f"{rate} MB/s"
            out.append(f"| {_vm_label(mem, cpus)} | {load} | {a} / {b} | " + " | ".join(cells) + " |")
    return out


def floor_s(lim, nbytes):
    """The one-core floor of a TLS migration: sealing and opening every byte once
    with AES-128-GCM (what sealvm negotiates) at this run's single-core rates."""
    v = lim["aead"].get("AES-128-GCM")
    if not v or not nbytes:
        return None
    return nbytes / 1e9 / v["encrypt"] + nbytes / 1e9 / v["decrypt"]


def floor_table(res):
    """sealvm's TLS cases against the one-core floor, with how long the destination took to get ready."""
    out = ["| VM | guest load | system | total s | one-core floor s | total / floor | destination ready s (before) | "
           "first touch GB/s before the run |", "|---|---|---|---|---|---|---|---|"]
    for c in res["cases"]:
        if not c["system"].startswith("sealvm") or not c["secure"]:
            continue
        ok = [r for r in c["runs"] if r.get("completed")]
        tot = stat([r["total_ms"] / 1000 for r in ok if r.get("total_ms")])
        fl = stat([floor_s(res["limits"], r.get("bytes")) for r in ok])
        ratio = stat([r["total_ms"] / 1000 / floor_s(res["limits"], r.get("bytes")) for r in ok
                      if r.get("total_ms") and floor_s(res["limits"], r.get("bytes"))])
        out.append(f"| {_vm_label(c['mem'], c.get('cpus', 1))} | {_load_label(c)} | {c['system']} | {_fmt(tot, 1, 2)} | "
                   f"{_fmt(fl, 1, 2)} | {_fmt(ratio, 1, 2)} | {_fmt(stat([r.get('dst_ready_s') for r in ok]), 1, 1)} | "
                   f"{_fmt(stat([r.get('first_touch_gb_s') for r in c['runs']]), 1, 2)} |")
    return out


def prep_table(res):
    """Every system's destination preparation and the memory state each run started from."""
    out = ["| VM | guest load | system | destination ready s (before the migration) | first touch GB/s before the run |",
           "|---|---|---|---|---|"]
    for c in res["cases"]:
        rs = c["runs"]
        out.append(f"| {_vm_label(c['mem'], c.get('cpus', 1))} | {_load_label(c)} | {c['system']} | "
                   f"{_fmt(stat([r.get('dst_ready_s') for r in rs]), 1, 1)} | "
                   f"{_fmt(stat([r.get('first_touch_gb_s') for r in rs]), 1, 2)} |")
    return out


def profile_section(res):
    out = []
    for c in res["cases"]:
        for r in c["runs"]:
            prof = r.get("profile")
            if not prof:
                continue
            out += [f"### {c['system']}, {_vm_label(c['mem'], c.get('cpus', 1))} {_load_label(c)}, run {r.get('run')}: "
                    f"total {r.get('total_ms', 0) / 1000:.2f} s", ""]
            for side, name in (("src", "source"), ("dst", "destination")):
                rows = prof.get(side) or []
                out += [f"{name} (self time, % of its samples):", "",
                        "| % | symbol |", "|---|---|"]
                out += [f"| {x['share']:.1f} | `{x['symbol']}`{' (kernel)' if x.get('kernel') else ''} |" for x in rows]
                out += [""]
    return out


def _ratio(sa, sb, key):
    if sb["completed"] == 0 and sa["completed"]:
        return "QEMU did not complete"
    a, b = sa.get(key), sb.get(key)
    if not a or not b or not b["median"]:
        return "–"
    return f"{a['median'] / b['median']:.2f}"


def snapshot_table(res):
    memcpy = res["limits"]["memcpy_gb_s"]
    out = [f"memcpy measured in this run: **{memcpy:.2f} GB/s** (one thread).", "",
           "| VM | snapshot MiB | data pages | write ms | GB/s written (% memcpy) | GB/s of RAM | paused ms | "
           "restore ms | GB/s read (% memcpy) | GB/s of RAM |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for mem in sorted({r["mem"] for r in res["snapshot"]}, key=lambda m: int(m[:-1])):
        rs = [r for r in res["snapshot"] if r["mem"] == mem and r.get("restore", {}).get("ms")]
        if not rs:
            out.append(f"| {mem} | failed | | | | | | | | |")
            continue
        def g(f):
            return stat([f(r) for r in rs])
        w, rd = g(lambda r: r["write_gb_s"]), g(lambda r: r["restore_gb_s"])
        cells = [mem, _fmt(g(lambda r: r["snapshot"]["bytes"]), 1 / 2**20),
                 _fmt(g(lambda r: r["snapshot"]["data_pages"])),
                 _fmt(g(lambda r: r["snapshot"]["write_ms"])),
                 f"{_fmt(w, 1, 2)} ({w['median'] / memcpy * 100:.0f}%)",
                 _fmt(g(lambda r: r["write_ram_gb_s"]), 1, 2),
                 _fmt(g(lambda r: r["snapshot"].get("paused_ms"))),
                 _fmt(g(lambda r: r["restore"]["ms"])),
                 f"{_fmt(rd, 1, 2)} ({rd['median'] / memcpy * 100:.0f}%)",
                 _fmt(g(lambda r: r["restore_ram_gb_s"]), 1, 2)]
        out.append("| " + " | ".join(cells) + " |")
    return out


def limits_table(lim):
    out = ["| machine limit | GB/s |", "|---|---|",
           f"| memcpy, one thread | {lim['memcpy_gb_s']:.2f} |",
           f"| loopback TCP, 1 stream | {lim['tcp1_gb_s']:.2f} |",
           f"| loopback TCP, 2 streams | {lim['tcp2_gb_s']:.2f} |"]
    for c, v in lim["aead"].items():
        out.append(f"| {c} (OpenSSL EVP, 16 KiB records, one core) encrypt / decrypt | "
                   f"{v['encrypt']:.2f} / {v['decrypt']:.2f} |")
    # the least CPU a GiB can cost at these rates, to read the CPU-per-GiB columns against
    gib = GIB / 1e9
    floors = [f"copying it once {gib / lim['memcpy_gb_s']:.2f} s"]
    for c in ("AES-128-GCM", "AES-256-GCM"):
        v = lim["aead"].get(c)
        if v:
            floors.append(f"sealing and opening it with {c} {gib / v['encrypt'] + gib / v['decrypt']:.2f} s")
    return out + ["", "CPU floor per GiB moved at these rates: " + "; ".join(floors) + "."]


def markdown(res):
    m = res["meta"]
    md = [f"# sealvm benchmark: {m['mode']}", "",
          f"{m['date']} · {m['cpu']} × {m['cores']} · Linux {m['kernel']} · {m['qemu']} · {m['openssl']} · "
          f"sealvm {m['sealvm_rev']}", "",
          f"CPU idle when the run started: {m['idle_share_start'] * 100:.0f}% "
          f"(load average {m['loadavg_start']}); at the end: load average {m.get('loadavg_end', '?')}.",
          ""]
    if m["idle_share_start"] < 0.9:
        md += ["**Warning: the machine was busy with other work when this run started; every figure below is "
               "lower than this machine can do.**", ""]
    md += ["## Machine limits (measured in this run, no VM running)", ""] + limits_table(res["limits"]) + [""]
    if res.get("cases"):
        md += [f"## Live migration: median [min–max] of {m['runs']} run(s) per case", "",
               f"Guest: `memcheck.elf ws={m.get('ws_mib', 512)} light=1 rate=N hb=1000` ({m.get('ws_mib', 512)} MiB working set, N MB/s of page "
               "rewrites; achieved rate in parentheses, from the guest's own heartbeats). "
               "done = the VM runs at the destination; conv. = converged (sealvm: the last round fitted the "
               "downtime target without a forced stop; QEMU: completed within the "
               f"{m['limit_s']:g} s limit, else cancelled); check = the guest's memory check was clean and its "
               "heartbeats continued where it ran afterwards. % of limit: throughput against "
               "loopback TCP for the connection count, and for TLS also AES-GCM on one core per connection. "
               "other work: share of the CPUs that processes other than the two VMMs used meanwhile "
               "(anything above a few % makes that case's figures worse than this machine can do).", ""]
        md += migration_table(res) + [""]
        md += ["## sealvm / QEMU (ratio of medians; below 1 means sealvm is faster or cheaper)", ""]
        md += ratio_table(res) + [""]
        md += ["## sealvm TLS against the one-core floor (AES-128-GCM sealing + opening of the bytes sent)", ""]
        md += floor_table(res) + [""]
        md += ["## Destination preparation and host memory state", ""] + prep_table(res) + [""]
        prof = profile_section(res)
        if prof:
            md += ["## Profiles (perf record at each end, during the migration)", ""] + prof
    if res.get("snapshot"):
        md += ["## Snapshot and restore (sealvm, `touch.elf ws=512`, file in /dev/shm): median [min–max]", ""]
        md += snapshot_table(res) + [""]
    md += ["## How these figures were taken", ""] + [f"- {n}" for n in res["notes"]] + [""]
    if res.get("chart"):
        md += [f"![total time and downtime per case]({os.path.basename(res['chart'])})", ""]
    return "\n".join(md)


SYSTEMS = ["sealvm-tls", "sealvm-tls-reserve", "sealvm-tcp", "qemu-plain", "qemu-plain-prealloc", "qemu-tls",
           "qemu-tls-prealloc", "qemu-tls-multifd"]
LARGE_SYSTEMS = ["sealvm-tls", "sealvm-tls-reserve", "qemu-plain", "qemu-plain-prealloc"]
PROFILE_SYSTEMS = ["sealvm-tls", "sealvm-tls-reserve"]


def chart(res, out_dir):
    """Two panels, total time and downtime, clustered by case; bars are medians,
    whiskers min–max; a missing bar did not complete."""
    if not res.get("cases"):
        return None
    by = {(c["mem"], c.get("cpus", 1), c["rate"], c["system"]): c["summary"] for c in res["cases"]}
    systems = [s for s in SYSTEMS if any(c["system"] == s for c in res["cases"])]
    dat = os.path.join(out_dir, "chart.dat")
    with open(dat, "w") as f:
        for mem, cpus, rate in _case_keys(res):
            vm = mem if cpus == 1 else f"{mem}x{cpus}"
            row = [f'"{vm} {"idle" if rate == 0 else str(rate) + " MB/s"}"']
            for key, scale in (("total_ms", 1e-3), ("downtime_ms", 1.0)):
                for s in systems:
                    st = (by.get((mem, cpus, rate, s)) or {}).get(key)
                    row += [f"{st[k] * scale:.4f}" for k in ("median", "min", "max")] if st else ["NaN"] * 3
            f.write(" ".join(row) + "\n")
    png = os.path.join(out_dir, "results.png")
    n = len(systems)
    gp = [f'set terminal png size 1200,900 font ",10"', f'set output "{png}"', "set multiplot layout 2,1",
          "set style data histogram", "set style histogram errorbars gap 2 lw 1", "set style fill solid 0.8 border -1",
          "set key outside right top", "set grid ytics", "set logscale y", "set xtics nomirror"]
    for panel, (title, off) in enumerate((("total migration time (s), log scale", 0),
                                          ("downtime (ms), log scale", 3 * n))):
        plots = [f'"{dat}" using {2 + off + 3 * i}:{3 + off + 3 * i}:{4 + off + 3 * i}'
                 + (":xtic(1)" if i == 0 else "") + f' title "{s}"' for i, s in enumerate(systems)]
        gp += [f'set title "{title}"', "plot " + ", ".join(plots)]
    gp += ["unset multiplot"]
    script = os.path.join(out_dir, "chart.gp")
    with open(script, "w") as f:
        f.write("\n".join(gp) + "\n")
    cp = subprocess.run(["gnuplot", script], capture_output=True, text=True)
    if cp.returncode != 0 or not os.path.exists(png):
        return None
    return png


def write(res, out_dir):
    for c in res.get("cases", []):
        c["summary"] = summarize(c)
    res["chart"] = chart(res, out_dir)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(res, f, indent=1, default=str)
    md = markdown(res)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(md)
    return md
