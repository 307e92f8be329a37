"""perf at both ends of a migration (BENCH=profile): `perf record` attached to the
source and destination VMM processes from just before `migrate` until the hand-over,
then the top symbols of each, self time, as `perf report` counts them."""
import os
import re
import signal
import subprocess

from . import procs

TOP = 15
LINE = re.compile(r"^\s*([\d.]+)%\s+\[(.)\]\s+(.*)$")


class Perf:
    def __init__(self, ends):
        self.ends = ends  # {"src"|"dst": (Popen, data file)}


def start(cfg, work, tag, src, dst):
    ends = {}
    for side, vm in (("src", src), ("dst", dst)):
        data = os.path.join(work, f"{tag}.{side}.perf.data")
        p = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-o", data, "-p", str(vm.proc.pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ends[side] = (p, data)
    procs.wait_until(lambda: all(os.path.exists(d) for _, d in ends.values()), 5, 0.05)
    return Perf(ends)


def stop(perf):
    for p, _ in perf.ends.values():
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p, _ in perf.ends.values():
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def report(perf):
    """{side: [{"symbol", "share"}...]}: the TOP symbols by self samples."""
    out = {}
    for side, (_, data) in perf.ends.items():
        cp = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "sym",
                             "--percent-limit", "0.5", "-g", "none"], capture_output=True, text=True)
        rows = []
        for ln in cp.stdout.splitlines():
            m = LINE.match(ln)  # "    12.34%  [k] clear_page_erms"
            if m:
                rows.append({"share": float(m.group(1)), "kernel": m.group(2) == "k", "symbol": m.group(3).strip()})
        out[side] = rows[:TOP]
    return out
