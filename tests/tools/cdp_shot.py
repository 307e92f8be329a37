#!/usr/bin/python3
"""Screenshots a page in headless Chromium until its text screen shows what we wait for.

usage: cdp_shot.py URL PROBE EXPECT OUTDIR [SECONDS]

Drives Debian's chromium over the DevTools protocol on a pipe (--remote-debugging-pipe: fds 3
and 4, NUL-separated JSON), so no extra client library is needed. Every half second it takes a
PNG screenshot, converts it to PPM (python3-pil) and asks PROBE (console_probe ppm) to read the
80x25 text screen from the pixels; it succeeds when a line of that text contains EXPECT. Every
wait is bounded; on failure the last screenshot and what was read are left in OUTDIR."""
import base64, io, json, os, select, shutil, subprocess, sys, tempfile, time

from PIL import Image

url, probe, expect, outdir = sys.argv[1:5]
limit = float(sys.argv[5]) if len(sys.argv) > 5 else 60
os.makedirs(outdir, exist_ok=True)
profile = tempfile.mkdtemp(prefix="console-chromium.")
to_chrome_r, to_chrome_w = os.pipe()
from_chrome_r, from_chrome_w = os.pipe()


def child_fds():
    os.dup2(to_chrome_r, 3)
    os.dup2(from_chrome_w, 4)


chrome = subprocess.Popen(
    ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
     "--disable-background-networking", "--disable-component-update", "--disable-sync",
     "--force-device-scale-factor=1", "--window-size=1024,768", "--remote-debugging-pipe",
     "--user-data-dir=" + profile, "about:blank"],
    pass_fds=(3, 4), preexec_fn=child_fds, stdout=subprocess.DEVNULL,
    stderr=open(os.path.join(outdir, "chromium.log"), "w"))
os.close(to_chrome_r)
os.close(from_chrome_w)
buf = b""
next_id = 0
deadline = time.monotonic() + limit


def fail(msg):
    print("cdp_shot: FAIL: " + msg)
    chrome.kill()
    shutil.rmtree(profile, ignore_errors=True)
    sys.exit(1)


def call(method, params=None, session=None, timeout=20):
    global buf, next_id
    next_id += 1
    msg = {"id": next_id, "method": method, "params": params or {}}
    if session:
        msg["sessionId"] = session
    os.write(to_chrome_w, json.dumps(msg).encode() + b"\0")
    end = min(deadline, time.monotonic() + timeout)
    while True:
        while b"\0" in buf:
            raw, buf = buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == next_id:
                if "error" in reply:
                    fail(f"{method}: {reply['error']}")
                return reply["result"]
        left = end - time.monotonic()
        if left <= 0:
            fail(f"chromium did not answer {method} in time")
        r, _, _ = select.select([from_chrome_r], [], [], left)
        if r:
            data = os.read(from_chrome_r, 1 << 20)
            if not data:
                fail("chromium exited (see chromium.log)")
            buf += data


target = call("Target.createTarget", {"url": url})["targetId"]
session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
call("Page.enable", session=session)
text = ""
shots = 0
while time.monotonic() < deadline:
    time.sleep(0.5)
    png = base64.b64decode(call("Page.captureScreenshot", {"format": "png"}, session=session)["data"])
    shots += 1
    with open(os.path.join(outdir, "shot.png"), "wb") as f:
        f.write(png)
    Image.open(io.BytesIO(png)).convert("RGB").save(os.path.join(outdir, "shot.ppm"))
    r = subprocess.run([probe, "ppm", os.path.join(outdir, "shot.ppm")], capture_output=True, text=True)
    text = r.stdout
    if r.returncode == 0 and any(expect in line for line in text.splitlines()):
        print(text, end="")
        print(f"cdp_shot: read '{expect}' on the page after {shots} screenshot(s)")
        chrome.kill()
        shutil.rmtree(profile, ignore_errors=True)
        sys.exit(0)
with open(os.path.join(outdir, "read.txt"), "w") as f:
    f.write(text)
fail(f"'{expect}' never appeared on the page within {limit:.0f} s ({shots} screenshots; "
     f"last one and its text in {outdir})")
