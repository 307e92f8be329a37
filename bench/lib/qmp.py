"""A minimal QMP client: commands with ids, events kept with QEMU's timestamps.

QEMU stamps every event with the host's wall clock, so the source's STOP and
the destination's RESUME give a downtime measured the way sealvm measures it
(vCPU stopped at the source until running at the destination), which QEMU's
own "downtime" figure (source side only) does not include.
"""
import json
import select
import socket
import time


class QmpError(Exception):
    pass


class Qmp:
    def __init__(self, path, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise QmpError(f"cannot connect to QMP at {path}")
                time.sleep(0.05)
        self.timeout = timeout
        self.buf = b""
        self.events = []
        self.next_id = 0
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self, timeout=None):
        """One JSON message, or None if timeout seconds pass first. A hand-made
        line buffer: a timed-out socket.makefile() reader cannot be read again."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                if timeout is None:
                    raise QmpError("QMP: no answer in %.0f s" % self.timeout)
                return None
            chunk = self.sock.recv(65536)
            if not chunk:
                raise QmpError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, **args):
        """Runs one command and returns its "return" value; events meanwhile are kept."""
        self.next_id += 1
        msg = {"execute": name, "id": self.next_id}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
            elif r.get("id") == self.next_id:
                if "error" in r:
                    raise QmpError(f"{name}: {r['error'].get('desc', r['error'])}")
                return r.get("return")

    def event_time(self, name):
        """Wall-clock time (s) of the first kept event called name, or None."""
        for e in self.events:
            if e["event"] == name:
                ts = e["timestamp"]
                return ts["seconds"] + ts["microseconds"] / 1e6
        return None

    def wait_event(self, name, timeout):
        """Waits (bounded) for an event; returns its wall-clock time or None."""
        deadline = time.monotonic() + timeout
        while self.event_time(name) is None and time.monotonic() < deadline:
            r = self._read(max(deadline - time.monotonic(), 0.0))
            if r is None:
                break
            if "event" in r:
                self.events.append(r)
        return self.event_time(name)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
