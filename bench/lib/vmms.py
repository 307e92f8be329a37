"""The two VMMs behind one interface: boot a guest, start a destination that
waits for it, migrate, stop. Each migrate() returns the same figures for both:

  completed   the VM runs at the destination (else it still runs at the source)
  converged   sealvm: the last round fitted the downtime target without a forced
              stop; QEMU: it completed within the time limit (QEMU never forces)
  total_ms    migrate command -> VM running at the destination
  downtime_ms vCPU stopped at the source -> running at the destination
  bytes       migration stream bytes (sealvm: including TLS framing)
  cpu         {src, dst}: {whole, vcpu, other} CPU seconds over the migration,
              whole process, its vCPU threads, and the rest (the migration's cost)
"""
import json
import os
import subprocess
import time

from . import procs
from .qmp import Qmp, QmpError


class Vm:
    """One VMM process running (or waiting for) the guest."""

    def __init__(self, proc, serial, ctl, log, uri=None, qmp=None):
        self.proc, self.serial, self.ctl, self.log = proc, serial, ctl, log
        self.uri, self.qmp = uri, qmp


def _json_tail(text):
    """The JSON object a `sealvm ctl` printed (it may span lines)."""
    i = text.find("{")
    try:
        return json.loads(text[i:]) if i >= 0 else None
    except ValueError:
        return None


def _finish(r, src_cpu, dst_cpu, machine):
    """Adds the CPU figures and throughput every system reports, and the share
    of the CPUs other work on the machine took meanwhile (it skews the rest)."""
    r["cpu"] = {"src": src_cpu, "dst": dst_cpu}
    r["foreign_cpu_share"] = machine.foreign
    secs = (r.get("total_ms") or 0) / 1000
    r["throughput_mb_s"] = round(r["bytes"] / 1e6 / secs, 1) if secs > 0 and r.get("bytes") else None
    return r


class Sealvm:
    """sealvm over tls:// (mutual TLS 1.3) or the insecure tcp://, via `sealvm run` and `sealvm ctl`."""

    def __init__(self, name, transport, cfg, reserve=False):
        self.name, self.transport, self.cfg = name, transport, cfg
        self.secure = transport == "tls"
        self.reserve = reserve  # the destination reserves and pre-faults the VM's memory before it comes

    def _tls(self, host):
        return ["--tls-dir", os.path.join(self.cfg.certs, host)] if self.secure else ["--insecure"]

    def boot(self, work, tag, mem, kernel, cmdline, cpus=1):
        serial, sock, log = (os.path.join(work, f"{tag}.{x}") for x in ("serial", "sock", "log"))
        argv = [self.cfg.sealvm, "run", "--kernel", kernel, "--cmdline", cmdline, "--mem", mem, "--cpus", str(cpus),
                "--serial", f"file:{serial}", "--control", sock, "--state-dir", os.path.join(work, f"{tag}.state")]
        argv += self._tls("hosta") if self.secure else []
        return Vm(procs.spawn(argv, log), serial, sock, log)

    def incoming(self, work, tag, mem, kernel, cmdline, cpus=1):
        """The vCPU count comes with the migration."""
        serial, sock, log = (os.path.join(work, f"{tag}.{x}") for x in ("serial", "sock", "log"))
        for _ in range(3):  # a port taken between free_port() and bind(): try another
            uri = f"{self.transport}://127.0.0.1:{procs.free_port()}"
            argv = [self.cfg.sealvm, "run", "--incoming", uri, "--serial", f"file:{serial}",
                    "--control", sock, "--state-dir", os.path.join(work, f"{tag}.state")] + self._tls("hostb")
            argv += ["--reserve", mem] if self.reserve else []
            p = procs.spawn(argv, log)
            if procs.wait_until(lambda: "waiting for an incoming VM" in _read(log) or not procs.alive(p), 15) \
                    and procs.alive(p):
                vm = Vm(p, serial, sock, log, uri=uri)
                vm.ready_s = self._reserve_ready(vm) if self.reserve else None
                return vm
            procs.kill(p)
        raise RuntimeError(f"sealvm destination did not listen: {_read(log)[-300:]}")

    def _reserve_ready(self, vm, limit=300):
        """Waits until the destination's reservation is populated (ctl status); its time in s."""
        t0 = time.monotonic()
        def ready():
            cp = subprocess.run([self.cfg.sealvm, "ctl", vm.ctl, "status"], capture_output=True, text=True)
            inc = (_json_tail(cp.stdout) or {}).get("incoming", {})
            return inc.get("reserved_bytes") and inc.get("reserve_ready_bytes") == inc.get("reserved_bytes")
        if not procs.wait_until(ready, limit, 0.2):
            raise RuntimeError(f"the destination's --reserve was not ready within {limit} s")
        return round(time.monotonic() - t0, 2)

    def migrate(self, src, dst, limit):
        machine = procs.MachineWindow()
        w_src, w_dst = procs.CpuWatch(src.proc.pid), procs.CpuWatch(dst.proc.pid)
        argv = [self.cfg.sealvm, "ctl", "--timeout", str(int(limit)), src.ctl, "migrate", dst.uri]
        argv += self._tls("hosta") + self.cfg.sealvm_args
        t0 = time.monotonic()
        try:
            cp = subprocess.run(argv, capture_output=True, text=True, timeout=limit + 30)
            out = cp.stdout + cp.stderr
        except subprocess.TimeoutExpired:
            out = ""
        wall = time.monotonic() - t0
        w_dst.finish()  # the destination's part ends at the hand-over; its vCPU starts then
        rep = _json_tail(out) or {}
        done = rep.get("result") == "committed"
        moved = done or self._outcome_after_limit(src, dst, rep)
        rc, life = procs.reap(src.proc, 20) if moved else (None, None)
        vcpu = lambda tid, comm: comm.startswith("vcpu")  # sealvm names its vCPU threads vcpu0, vcpu1, ...
        src_cpu = w_src.finish(life).split(vcpu)
        machine.close(src_cpu["whole"], (procs.proc_cpu(dst.proc.pid) or w_dst.whole0) - w_dst.whole0)
        dst_cpu = w_dst.split(vcpu)
        r = {"completed": done, "converged": done and bool(rep.get("converged")),
             "guest_at": "destination" if moved else "source",
             "total_ms": rep.get("total_ms"), "downtime_ms": rep.get("downtime_ms"),
             "bytes": rep.get("bytes"), "wall_s": round(wall, 3), "rounds": rep.get("rounds"),
             "throttle_pct": rep.get("throttle_pct"), "downtime_target_ms": rep.get("downtime_target_ms"),
             "streams": rep.get("channels"),
             "vmm_cpu": {"src": rep.get("src_cpu_s"), "dst": rep.get("dest_cpu_s")},
             "source_exit": rc, "report": rep, "dst_ready_s": getattr(dst, "ready_s", None)}
        if not done:
            r["error"] = (rep.get("error") or out.strip() or f"no answer within {limit} s")[-300:]
        return _finish(r, src_cpu, dst_cpu, machine)

    @staticmethod
    def _outcome_after_limit(src, dst, rep):
        """`sealvm ctl` gave up at the time limit, but sealvm has no cancel: the
        migration runs on and always ends (after its last round it stops and
        copies). Wait for that end: True if the guest now runs at the destination."""
        if rep or procs.exited(src.proc):
            return False
        procs.wait_until(lambda: procs.exited(src.proc) or not procs.alive(dst.proc), 120, 0.2)
        return procs.alive(dst.proc) and "committed and running" in _read(dst.log)

    def stop(self, vm):
        if procs.alive(vm.proc):
            try:
                subprocess.run([self.cfg.sealvm, "ctl", "--timeout", "10", vm.ctl, "quit"], capture_output=True,
                               timeout=20)
            except subprocess.TimeoutExpired:
                pass
            procs.reap(vm.proc, 10)
        procs.kill(vm.proc)


class Qemu:
    """QEMU plain, with TLS (tls-creds-x509, both sides verifying) or TLS + multifd, via QMP."""

    def __init__(self, name, tls, multifd, cfg, prealloc=False):
        self.name, self.tls, self.multifd, self.cfg = name, tls, multifd, cfg
        self.secure = tls
        self.prealloc = prealloc  # -mem-prealloc at the destination: its memory is faulted in at start

    def _argv(self, mem, kernel, cmdline, serial, sock, cpus):
        creds = f"dir={self.cfg.qemu_tls},verify-peer=on"
        # debug-threads=on names the vCPU threads "CPU n/KVM", so their CPU time can be told apart
        return [self.cfg.qemu, "-name", "bench,debug-threads=on", "-accel", "kvm", "-m", mem, "-smp", str(cpus),
                "-nodefaults", "-display", "none", "-no-reboot", "-serial", f"file:{serial}",
                "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-kernel", kernel, "-append", cmdline,
                "-qmp", f"unix:{sock},server=on,wait=off",
                # both endpoints in every QEMU: a destination becomes the next run's source
                "-object", f"tls-creds-x509,id=tlssrv,endpoint=server,{creds}",
                "-object", f"tls-creds-x509,id=tlscli,endpoint=client,{creds}"]

    def _start(self, work, tag, mem, kernel, cmdline, extra, cpus):
        serial, sock, log = (os.path.join(work, f"{tag}.{x}") for x in ("serial", "qmp", "log"))
        p = procs.spawn(self._argv(mem, kernel, cmdline, serial, sock, cpus) + extra, log)
        try:
            # QMP answers once the machine exists: after -mem-prealloc has faulted in all of it
            q = Qmp(sock, timeout=300.0 if "-mem-prealloc" in extra else 30.0)
        except QmpError as e:
            procs.kill(p)
            raise RuntimeError(f"QEMU did not start: {e}: {_read(log)[-300:]}")
        return Vm(p, serial, sock, log, qmp=q)

    def _setup(self, q, creds):
        """Same capabilities and parameters on both sides, as QEMU requires."""
        q.cmd("migrate-set-capabilities", capabilities=[{"capability": "multifd", "state": self.multifd > 1}])
        params = {"tls-creds": creds if self.tls else ""}
        if self.multifd > 1:
            params["multifd-channels"] = self.multifd
        q.cmd("migrate-set-parameters", **params)

    def boot(self, work, tag, mem, kernel, cmdline, cpus=1):
        return self._start(work, tag, mem, kernel, cmdline, [], cpus)

    def incoming(self, work, tag, mem, kernel, cmdline, cpus=1):
        """QEMU's destination must be started with the source's -smp."""
        t0 = time.monotonic()
        vm = self._start(work, tag, mem, kernel, cmdline,
                         ["-incoming", "defer"] + (["-mem-prealloc"] if self.prealloc else []), cpus)
        vm.ready_s = round(time.monotonic() - t0, 2) if self.prealloc else None
        self._setup(vm.qmp, "tlssrv")
        for _ in range(3):
            port = procs.free_port()
            try:
                vm.qmp.cmd("migrate-incoming", uri=f"tcp:127.0.0.1:{port}")
                vm.uri = f"tcp:127.0.0.1:{port}"
                return vm
            except QmpError:
                continue
        self.stop(vm)
        raise RuntimeError("QEMU destination did not listen")

    def migrate(self, src, dst, limit):
        q = src.qmp
        self._setup(q, "tlscli")
        # QEMU's default max-bandwidth (32 MiB/s) would make this a test of the limit
        q.cmd("migrate-set-parameters", **{"max-bandwidth": 100 << 30})
        params = q.cmd("query-migrate-parameters")
        machine = procs.MachineWindow()
        w_src, w_dst = procs.CpuWatch(src.proc.pid), procs.CpuWatch(dst.proc.pid)
        q.events.clear()
        dst.qmp.events.clear()
        t0, m0 = time.time(), time.monotonic()
        q.cmd("migrate", uri=dst.uri)
        info = self._poll(q, m0, limit)
        done = info.get("status") == "completed"
        t_resume = dst.qmp.wait_event("RESUME", 15) if done else None
        vcpu = lambda tid, comm: comm.startswith("CPU ")  # "CPU 0/KVM" with debug-threads=on
        dst_cpu, src_cpu = w_dst.finish().split(vcpu), w_src.finish().split(vcpu)
        machine.close(src_cpu["whole"], dst_cpu["whole"])
        t_stop = q.event_time("STOP")
        ram = info.get("ram", {})
        r = {"completed": done and t_resume is not None, "converged": done, "status": info.get("status"),
             "guest_at": "destination" if done else "source",
             "total_ms": round((t_resume - t0) * 1000, 1) if t_resume else None,
             "downtime_ms": round((t_resume - t_stop) * 1000, 1) if t_resume and t_stop else None,
             "bytes": ram.get("transferred"), "wall_s": round(time.monotonic() - m0, 3),
             "rounds": ram.get("dirty-sync-count"), "downtime_target_ms": params.get("downtime-limit"),
             "streams": self.multifd,
             "qemu": {"total_time_ms": info.get("total-time"), "downtime_ms": info.get("downtime"),
                      "setup_time_ms": info.get("setup-time"), "ram": ram,
                      "max_bandwidth": params.get("max-bandwidth"),
                      "multifd_channels": params.get("multifd-channels") if self.multifd > 1 else None}}
        if not r["completed"]:
            r["error"] = info.get("error-desc") or (f"not complete within {limit} s (cancelled)"
                                                    if info.get("status") == "cancelled" else info.get("status"))
        return _finish(r, src_cpu, dst_cpu, machine)

    def _poll(self, q, m0, limit):
        """query-migrate until it ends; past the time limit, cancel and say so."""
        while True:
            info = q.cmd("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                return info
            if time.monotonic() - m0 > limit:
                q.cmd("migrate_cancel")
                end = procs.wait_until(lambda: q.cmd("query-migrate").get("status") in ("cancelled", "failed"), 30)
                info = q.cmd("query-migrate")
                info["timed_out"] = bool(end)
                return info
            time.sleep(0.05)

    def stop(self, vm):
        if procs.alive(vm.proc):
            try:
                vm.qmp.cmd("quit")
            except (QmpError, OSError):
                pass
            procs.reap(vm.proc, 10)
        vm.qmp.close()
        procs.kill(vm.proc)


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""
