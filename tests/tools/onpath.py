#!/usr/bin/env python3
"""onpath.py: an on-path attacker for the hand-over tests.

It relays the first PASS connections to TARGET untouched (the migration's
channels), then treats every later connection (outcome queries) as told:

  refuse     stop listening: later connects get a TCP RST (ECONNREFUSED)
  reset      accept, then reset at once (SO_LINGER 0)
  garbage    accept, send random bytes, close
  blackhole  accept and never answer

SIGUSR1 heals the path: from then on every connection is relayed.
Writes its port to --port-file; logs one line per event to stderr.

usage: onpath.py --port-file F [--pass N] LISTEN_PORT TARGET_HOST:TARGET_PORT MODE
"""
import argparse
import os
import signal
import socket
import struct
import sys
import threading

healed = threading.Event()


def log(msg):
    sys.stderr.write("onpath: %s\n" % msg)
    sys.stderr.flush()


def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def relay(c, target):
    try:
        t = socket.create_connection(target)
    except OSError as e:
        log("cannot reach target: %s" % e)
        c.close()
        return
    threading.Thread(target=pump, args=(c, t), daemon=True).start()
    threading.Thread(target=pump, args=(t, c), daemon=True).start()


def listener(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--pass", dest="npass", type=int, default=1)
    ap.add_argument("port", type=int)
    ap.add_argument("target")
    ap.add_argument("mode", choices=["refuse", "reset", "garbage", "blackhole"])
    a = ap.parse_args()
    host, tport = a.target.rsplit(":", 1)
    target = (host, int(tport))
    signal.signal(signal.SIGUSR1, lambda *_: healed.set())

    s = listener(a.port)
    port = s.getsockname()[1]
    with open(a.port_file + ".tmp", "w") as f:
        f.write("%d\n" % port)
    os.rename(a.port_file + ".tmp", a.port_file)
    n = 0
    held = []
    while True:
        if s is None:
            # refusing: nothing listens until healed
            healed.wait()
            log("healed: listening again")
            s = listener(port)
        try:
            c, _ = s.accept()
        except InterruptedError:
            continue
        n += 1
        if n <= a.npass or healed.is_set():
            log("connection %d relayed" % n)
            relay(c, target)
            if n == a.npass and a.mode == "refuse" and not healed.is_set():
                s.close()
                s = None
                log("stopped listening: later connections are refused")
            continue
        if a.mode == "reset":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            log("connection %d reset" % n)
        elif a.mode == "garbage":
            try:
                c.sendall(os.urandom(4096))
            except OSError:
                pass
            c.close()
            log("connection %d answered with garbage" % n)
        elif a.mode == "blackhole":
            held.append(c)
            log("connection %d held silent" % n)


if __name__ == "__main__":
    main()
