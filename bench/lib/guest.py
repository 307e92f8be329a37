"""What the memory-checker guest (guest/memcheck.c) prints on its serial line.

READY once the working set is filled, then one heartbeat a second:
  HB seq=.. ms=.. writes=.. checks=.. passes=.. bad=.. tsc_ms=.. [wrate=MB/s] [cpus=N]
and a BAD line for every corrupt page found. seq is guest state, so it carries
on across a migration: the destination's first heartbeat follows the source's last.
On several CPUs each one also prints its own:
  CPU c seq=.. ms=.. writes=.. checks=.. passes=.. bad=.. tsc_ms=.. [wrate=MB/s]
"""
import re
import time

HB = re.compile(r"^HB seq=(\d+) ms=\d+ writes=(\d+) checks=(\d+) passes=(\d+) bad=(\d+)"
                r"(?: tsc_ms=\d+)?(?: wrate=([\d.]+))?")
CPU_HB = re.compile(r"^CPU (\d+) seq=(\d+) ")


def lines(path):
    """Complete lines of a serial log (a last line still being written is left out)."""
    try:
        with open(path, "rb") as f:
            data = f.read().decode("latin-1")
    except OSError:
        return []
    return data.split("\n")[:-1]


def heartbeats(path):
    out = []
    for ln in lines(path):
        m = HB.match(ln)
        if m:
            out.append({"seq": int(m[1]), "writes": int(m[2]), "checks": int(m[3]), "passes": int(m[4]),
                        "bad": int(m[5]), "wrate": float(m[6]) if m[6] else 0.0})
    return out


def last_seq(path):
    hb = heartbeats(path)
    return hb[-1]["seq"] if hb else 0


def cpu_seqs(path):
    """{cpu: last heartbeat seq} of each CPU's own lines (empty on one CPU)."""
    out = {}
    for ln in lines(path):
        m = CPU_HB.match(ln)
        if m:
            out[int(m[1])] = int(m[2])
    return out


def bad_lines(path):
    return [ln for ln in lines(path) if ln.startswith("BAD")]


def wait_for(path, regex, timeout, proc=None):
    """Waits for a line matching regex; gives up early if proc has exited."""
    rx = re.compile(regex)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ln in lines(path):
            if rx.search(ln):
                return ln
        if proc is not None and proc.poll() is not None:
            return None
        time.sleep(0.1)
    return None


def wait_hb_after(path, seq, timeout, proc=None):
    """Waits for a heartbeat numbered above seq; returns it or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hb = heartbeats(path)
        if hb and hb[-1]["seq"] > seq:
            return hb[-1]
        if proc is not None and proc.poll() is not None:
            return None
        time.sleep(0.1)
    return None


def check(path, after_seq, beats, timeout, proc=None, cpus=1, cpu_after=None):
    """The guest runs on from heartbeat after_seq: waits for `beats` more,
    then checks that no page was ever reported corrupt and, on several CPUs,
    that each CPU's own heartbeat went past cpu_after[cpu]. Returns a verdict dict."""
    t0 = time.monotonic()
    got = wait_hb_after(path, after_seq + beats - 1, timeout, proc)
    stalled = []
    if got and cpus > 1:
        cpu_after = cpu_after or {}
        def moved():
            now = cpu_seqs(path)
            return [c for c in range(cpus) if now.get(c, 0) <= cpu_after.get(c, 0)]
        while moved() and time.monotonic() - t0 < timeout and (proc is None or proc.poll() is None):
            time.sleep(0.1)
        stalled = moved()
    hb = heartbeats(path)
    mine = [h for h in hb if h["seq"] > after_seq]
    bad = bad_lines(path)
    v = {
        "heartbeats": len(mine),
        "first_seq": mine[0]["seq"] if mine else None,
        "last_seq": hb[-1]["seq"] if hb else None,
        "bad": hb[-1]["bad"] if hb else None,
        "bad_lines": bad[:3],
        "pages_checked": (mine[-1]["checks"] - mine[0]["checks"]) if len(mine) > 1 else 0,
        "wrate": mine[-1]["wrate"] if mine else None,
        "cpus": cpus,
        "cpu_seqs": cpu_seqs(path) if cpus > 1 else None,
    }
    # A heartbeat the source was half-way through printing ends at the
    # destination, so the first complete one there may be after_seq + 2.
    v["ok"] = bool(got) and not bad and v["bad"] == 0 and not stalled
    if not v["ok"]:
        v["why"] = ("no heartbeat after seq %d" % after_seq if not got else
                    "BAD lines" if bad else "bad=%s" % v["bad"] if v["bad"] != 0 else
                    "CPU(s) %s gave no heartbeat of their own" % stalled)
    return v
