#!/usr/bin/env python3
"""console_attacker.py: the other side of the console's migration tests.

  record PORT HOST:PORT FILE     relays every connection to HOST:PORT and appends all
                                 bytes, both ways, to FILE (what a network sees)
  inject PORT HOST:PORT URI SECS relays; SECS after the first connection started,
                                 slips a well-formed console REDIRECT to URI into the
                                 server->client bytes, outside TLS (an on-path attacker)
  fake CERTDIR PORT URI          a console server with CERTDIR's certificate: answers
                                 any client's HELLO with WELCOME and a REDIRECT to URI
  trap PORT FILE                 accepts connections and logs one line each to FILE
                                 (did a client follow a redirect here?)

Logs to stderr; runs until killed.
"""
import socket
import ssl
import struct
import sys
import threading
import time


def log(msg):
    sys.stderr.write("attacker: %s\n" % msg)
    sys.stderr.flush()


def listener(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    return s


def redirect_frame(uri):
    payload = struct.pack(">QQ", 0, 0) + uri.encode()
    return struct.pack(">BBHI", 0x90, 0, 0, len(payload)) + payload


def relay(port, target, record=None, inject=None):
    host, tport = target.rsplit(":", 1)
    lock = threading.Lock()
    first = [True]

    def pump(a, b, tap, injected):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if tap:
                    with lock:
                        tap.write(d)
                        tap.flush()
                b.sendall(d)
                if injected and not injected[0] and time.time() >= injected[1]:
                    b.sendall(injected[2])
                    injected[0] = True
                    log("injected a REDIRECT frame into the server's stream")
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    tap = open(record, "ab") if record else None
    ls = listener(port)
    while True:
        c, _ = ls.accept()
        u = socket.create_connection((host, int(tport)))
        inj = None
        if inject and first[0]:
            inj = [False, time.time() + inject[1], redirect_frame(inject[0])]
        first[0] = False
        threading.Thread(target=pump, args=(c, u, tap, None), daemon=True).start()
        threading.Thread(target=pump, args=(u, c, tap, inj), daemon=True).start()


def fake(certdir, port, uri):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(certdir + "/cert.pem", certdir + "/key.pem")
    ls = listener(port)
    while True:
        c, _ = ls.accept()
        try:
            t = ctx.wrap_socket(c, server_side=True)
            hello = b""
            while len(hello) < 24:
                d = t.recv(24 - len(hello))
                if not d:
                    break
                hello += d
            welcome = struct.pack(">IIQQ", 2, 1, 0, 0)
            t.sendall(struct.pack(">BBHI", 0x81, 0, 0, len(welcome)) + welcome + redirect_frame(uri))
            log("sent WELCOME and a REDIRECT to %s" % uri)
            time.sleep(2)
            t.close()
        except (OSError, ssl.SSLError) as e:
            log("client went away: %s" % e)
            c.close()


def trap(port, path):
    ls = listener(port)
    while True:
        c, addr = ls.accept()
        with open(path, "a") as f:
            f.write("connection from %s:%d\n" % addr)
        log("a client came to the trap")
        c.close()


def main():
    a = sys.argv[1:]
    if len(a) == 4 and a[0] == "record":
        relay(int(a[1]), a[2], record=a[3])
    elif len(a) == 5 and a[0] == "inject":
        relay(int(a[1]), a[2], inject=(a[3], float(a[4])))
    elif len(a) == 4 and a[0] == "fake":
        fake(a[1], int(a[2]), a[3])
    elif len(a) == 3 and a[0] == "trap":
        trap(int(a[1]), a[2])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
