#!/usr/bin/env bash
# make bench BENCH=split-seal: what sealing a page for a memory server costs one core
# (split migration, issue 11). Runs build/tools/seal_bench niced, twice: pages out of
# cache (a 64 MiB working set, as pages come from guest RAM) and in cache (256 KiB,
# the cipher alone). Writes build/bench/split-seal.json and build/bench/split-seal.md.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/tools/seal_bench ] || { echo "bench: run make first" >&2; exit 1; }
B=build/bench
mkdir -p "$B"
secs=${SECONDS_PER_CASE:-3}
cold=$(nice -n 10 build/tools/seal_bench --seconds "$secs" --pages 16384)
hot=$(nice -n 10 build/tools/seal_bench --seconds "$secs" --pages 64)
load=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$B/split-seal.json" "$B/split-seal.md" "$load" <<P
import json, sys, time
cold = json.loads('''$cold''')
hot = json.loads('''$hot''')
json.dump({"cold": cold, "hot": hot, "load": sys.argv[3]}, open(sys.argv[1], "w"), indent=1)
rows = [("memcpy (yardstick)", "memcpy"), ("seal, AES-256-GCM", "seal_aes256gcm"),
        ("open, AES-256-GCM", "open_aes256gcm"), ("seal, plain page + GMAC", "seal_plain_gmac"),
        ("open, plain page + GMAC", "open_plain_gmac")]
with open(sys.argv[2], "w") as f:
    f.write("# Sealing pages for memory servers, one core (%s, load average %s)\n\n"
            % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), sys.argv[3]))
    f.write("| operation | out of cache: GB/s | µs/page | in cache: GB/s | µs/page |\n|---|---|---|---|---|\n")
    for name, k in rows:
        f.write("| %s | %.2f | %.2f | %.2f | %.2f |\n" % (name, cold[k]["gb_per_s"], cold[k]["us_per_page"],
                                                       hot[k]["gb_per_s"], hot[k]["us_per_page"]))
    f.write("\nOut of cache: %d distinct pages (64 MiB); in cache: %d pages. Each case runs %.0f s.\n"
            % (cold["pages"], hot["pages"], cold["seconds_per_case"]))
print(open(sys.argv[2]).read())
P
