"""The machine's own limits, measured in the same run as the VMMs, with no VM
running: single-thread memcpy, loopback TCP with 1 and 2 streams, and one
core's AEAD rate through OpenSSL EVP on 16 KiB records (a TLS record's size)."""
import json
import os
import subprocess


def _tool(cfg, name, *args):
    out = subprocess.run([os.path.join(cfg.tools, name)] + [str(a) for a in args], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    return [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]


def _best(cfg, name, *args, tries=2):
    """Best of a few tries: other work on the machine only ever slows a figure down."""
    return max((_tool(cfg, name, *args)[0] for _ in range(tries)), key=lambda r: r["gb_s"])


def measure(cfg, log):
    lim = {"memcpy_gb_s": _best(cfg, "membw", 256, 1.0)["gb_s"]}
    log(f"memcpy {lim['memcpy_gb_s']:.2f} GB/s")
    for n in (1, 2):
        lim[f"tcp{n}_gb_s"] = _best(cfg, "tcpbw", n, 1.5)["gb_s"]
        log(f"loopback TCP, {n} stream(s): {lim[f'tcp{n}_gb_s']:.2f} GB/s")
    lim["aead"] = {}
    for r in _tool(cfg, "aeadbw", 0.7):
        lim["aead"].setdefault(r["cipher"], {})[r["op"]] = r["gb_s"]
    for c, v in lim["aead"].items():
        log(f"{c}: encrypt {v['encrypt']:.2f} GB/s, decrypt {v['decrypt']:.2f} GB/s (one core)")
    return lim


def wire_limit(lim, secure, streams):
    """The rate (GB/s) the machine allows a migration stream: loopback TCP for
    its number of connections, and for TLS also AES-GCM on as many cores as
    there are connections, each sealed by one thread (sealvm negotiates
    AES-128-GCM, QEMU's GnuTLS AES-256-GCM; the slower is the ceiling used)."""
    streams = max(1, min(streams or 1, 2, os.cpu_count() or 1))
    tcp = lim[f"tcp{streams}_gb_s"]
    if not secure:
        return tcp
    return min(tcp, streams * min(v["encrypt"] for c, v in lim["aead"].items() if "GCM" in c))
