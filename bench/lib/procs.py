"""Processes the benchmark starts, and what they cost.

Every child goes through spawn() and is killed by kill_all() when the driver
ends, however it ends. CPU time comes from /proc (utime + stime) while a
process lives, and from wait4()'s rusage once it has exited on its own (a
sealvm source exits after the hand-over, taking its /proc entry with it).
"""
import os
import socket
import subprocess
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
_children = []


def spawn(argv, log_path):
    """Starts argv with stdout+stderr to log_path; registered for kill_all()."""
    with open(log_path, "wb") as log:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    _children.append(p)
    return p


def alive(p):
    """True while p runs. Reaps p if it has exited (so its rusage is lost:
    use reap() where the CPU time of an exiting process matters)."""
    return p is not None and p.returncode is None and p.poll() is None


def exited(p):
    """True once p has exited; unlike alive() it leaves p unreaped, so that
    reap() can still collect its CPU time."""
    if p.returncode is not None:
        return True
    return os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def kill(p):
    """Ends one child we started (the VMMs were asked to quit before, where they can be)."""
    if not alive(p):
        return
    p.kill()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        pass


def kill_all():
    for p in _children:
        kill(p)
    _children.clear()


def reap(p, timeout):
    """Waits (bounded) for p to exit on its own. Returns (exit code, CPU seconds
    of its whole life) or (None, None) if it is still running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.returncode is not None:
            return p.returncode, None  # reaped elsewhere: no rusage
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            return p.returncode, ru.ru_utime + ru.ru_stime
        time.sleep(0.02)
    return None, None


def _stat_fields(path):
    """Fields of a /proc stat file after the ')' closing comm; None if gone."""
    try:
        with open(path) as f:
            s = f.read()
    except OSError:
        return None
    return s.rsplit(")", 1)[1].split()


def proc_cpu(pid):
    """utime + stime of a whole process in seconds (all its threads), or None."""
    f = _stat_fields(f"/proc/{pid}/stat")
    return None if f is None else (int(f[11]) + int(f[12])) / CLK_TCK


def thread_cpu(pid):
    """{tid: (comm, cpu seconds)} for every thread of pid ({} if gone)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        f = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
        if f is None:
            continue
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as c:
                comm = c.read().strip()
        except OSError:
            comm = "?"
        out[int(tid)] = (comm, (int(f[11]) + int(f[12])) / CLK_TCK)
    return out


class CpuWatch:
    """CPU seconds one process spends over a window, in total and per thread.
    Samples per-thread figures in the background, so they survive a process
    that exits at the end of the window (sealvm's source after the hand-over)."""

    def __init__(self, pid, period=0.05):
        self.pid, self.period = pid, period
        self.whole0 = proc_cpu(pid) or 0.0
        self.threads0 = thread_cpu(pid)
        self.last = dict(self.threads0)
        self.whole = None
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _sample(self):
        now = thread_cpu(self.pid)
        self.last.update(now)  # keep exited threads' last figures
        return now

    def _run(self):
        while not self._stop.wait(self.period):
            if not self._sample():
                break

    def finish(self, whole_life_cpu=None):
        """Closes the window. whole_life_cpu: the process's lifetime CPU from
        wait4() if it has exited (its /proc entry is gone then)."""
        self._stop.set()
        self._t.join()
        if whole_life_cpu is None:
            self._sample()
            self.whole = (proc_cpu(self.pid) or self.whole0) - self.whole0
        else:
            self.whole = whole_life_cpu - self.whole0
        return self

    def split(self, is_vcpu):
        """{whole, vcpu, other} seconds over the window; is_vcpu(tid, comm)
        says which threads are vCPUs (decided after the window if need be)."""
        vcpu = sum(cpu - self.threads0.get(tid, (comm, 0.0))[1]
                   for tid, (comm, cpu) in self.last.items() if is_vcpu(tid, comm))
        return {"whole": round(self.whole, 3), "vcpu": round(vcpu, 3), "other": round(max(self.whole - vcpu, 0.0), 3)}


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(fn, timeout, step=0.1):
    """Polls fn() until it returns something truthy or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def system_busy_s():
    """Busy CPU seconds of the whole machine since boot (/proc/stat, all CPUs)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK  # user..steal, less idle and iowait


def self_cpu_s():
    """CPU seconds of this driver process itself (all its threads)."""
    t = os.times()
    return t.user + t.system


class MachineWindow:
    """Busy CPU time of the whole machine over a window, so that what other
    processes used meanwhile can be told apart from the VMMs and this driver."""

    def __init__(self):
        self.t0, self.busy0, self.self0 = time.monotonic(), system_busy_s(), self_cpu_s()

    def close(self, *whole):
        """whole: CPU seconds each VMM used over this same window. Sets
        self.foreign: the share of all CPUs that other processes used."""
        wall = time.monotonic() - self.t0
        busy = system_busy_s() - self.busy0 - (self_cpu_s() - self.self0)
        ncpu = os.cpu_count() or 1
        self.foreign = round(max(busy - sum(whole), 0.0) / (wall * ncpu), 3) if wall > 0 else None
        return self


def machine_idle_share(dt=1.0):
    """Share of all CPUs idle over dt seconds (/proc/stat): other work on the
    machine skews every figure, so the report records it."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)
    i0, t0 = snap()
    time.sleep(dt)
    i1, t1 = snap()
    return (i1 - i0) / max(t1 - t0, 1)
