#!/usr/bin/env bash
# Verifies the hand-over model (model/handover.pml) with SPIN: builds each verifier
# with gcc, runs it, and prints the state space explored. What each section checks,
# and under which bounds, is in model/README.md.
#
# Usage: model/verify.sh [SECTION...]      (default: all)
#   props    every safety property at the standard bounds, and `split` without --force
#   wide     all safety properties at once at wider bounds (2 operator commands; 2 crashes)
#   live     liveness: every migration ends; UNCERTAIN ends once the destination answers
#   old      the old rules: SPIN must find the known split brains (trail summarised)
#   found    what this model found in the implementation and the design (trail summarised)
#   mutants  each guard removed in turn: SPIN must catch every mutation
#   deep     (not in all) wider bounds still: 2 operator commands and a crash; 3 queries, 3 versions
# Exit status 0 when every outcome is the expected one. Work files: build/model/
# (MODEL_OUT). Runs under `nice`; SPIN_MEM (MB, default 3000) caps each verifier.
set -u
here=$(cd "$(dirname "$0")" && pwd)
MODEL=$here/handover.pml
OUT=${MODEL_OUT:-$here/../build/model}
MEM=${SPIN_MEM:-3000}
NICE=(nice -n 10)
bad=0

command -v spin >/dev/null || { echo "spin is not installed (Debian package spin; scripts/deps.sh test)"; exit 2; }
command -v gcc >/dev/null || { echo "gcc is not installed"; exit 2; }
mkdir -p "$OUT"

# build TAG KIND DEFS...: a verifier for the model with DEFS in $OUT/TAG.
# KIND: safety (DFS), big (DFS, compressed states), quick (DFS, small searches), bfs (shortest counterexample),
# live (acceptance cycles). Small searches take an unoptimised build: gcc -O2 on
# pan.c costs more than it saves there.
build() {
  local tag=$1 kind=$2; shift 2
  local dir=$OUT/$tag flags stamp
  case $kind in
    safety) flags="-O2 -DSAFETY" ;;
    big)    flags="-O2 -DSAFETY -DCOLLAPSE" ;;
    quick)  flags="-O0 -DSAFETY" ;;
    bfs)    flags="-O0 -DSAFETY -DBFS" ;;
    live)   flags="-O2 -DNFAIR=3" ;;
  esac
  stamp="$(sha256sum "$MODEL" | cut -c1-16) $kind $* $(spin -V)"
  mkdir -p "$dir"
  if [ -x "$dir/pan" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  rm -f "$dir"/pan "$dir"/*.trail
  if ! (cd "$dir" && spin "$@" -a "$MODEL" >spin.out 2>&1 &&
        "${NICE[@]}" gcc -w $flags -DMEMLIM="$MEM" -o pan pan.c >gcc.out 2>&1); then
    echo "FAIL  $tag: cannot build the verifier ($*)"; cat "$dir/spin.out" "$dir/gcc.out" 2>/dev/null | tail -5
    bad=1; return 1
  fi
  echo "$stamp" > "$dir/stamp"
}

# run TAG PROP ARGS...: runs the verifier for one property; sets ERRORS and STATS.
run() {
  local tag=$1 prop=$2; shift 2
  local dir=$OUT/$tag t0 t1 o
  rm -f "$dir"/*.trail
  t0=$(date +%s.%N)
  (cd "$dir" && "${NICE[@]}" ./pan -N "$prop" -m500000 "$@" >"$prop.out" 2>&1)
  t1=$(date +%s.%N)
  o=$dir/$prop.out
  ERRORS=$(grep -o 'errors: [0-9]*' "$o" | head -1 | cut -d' ' -f2)
  STATS=$(awk -v t0="$t0" -v t1="$t1" '
    /states, stored/ { st = $1 }
    /transitions \(= / { tr = $1 }
    /depth reached/ { for (i = 1; i <= NF; i++) if ($i == "reached") d = $(i + 1); sub(",", "", d) }
    /total actual memory usage/ { m = $1 }
    END { printf "states=%d transitions=%d depth=%s memory=%.0fMB time=%.1fs", st, tr, d, m, t1 - t0 }' "$o")
  INCOMPLETE=""
  grep -q "reached -DMEMLIM bound\|max search depth too small\|out of memory" "$o" && INCOMPLETE=" (search INCOMPLETE)"
  [ -n "$ERRORS" ] || { ERRORS=x; INCOMPLETE=" (the verifier did not finish: $(tail -n 2 "$o" | tr '\n' ' '))"; }
}

# expect_pass TAG KIND "DEFS" PROP [PAN ARGS]: the property holds (full search).
expect_pass() {
  local tag=$1 kind=$2 defs=$3 prop=$4; shift 4
  # shellcheck disable=SC2086
  build "$tag" "$kind" $defs || return
  run "$tag" "$prop" "$@"
  if [ "$ERRORS" = 0 ] && [ -z "$INCOMPLETE" ]; then
    printf 'PASS  %-28s %s\n' "$tag/$prop$(case " $* " in *" -f "*) echo " (fair)";; esac)" "$STATS"
  else
    printf 'FAIL  %-28s holds not: errors=%s%s %s\n' "$tag/$prop" "$ERRORS" "$INCOMPLETE" "$STATS"
    summarise "$tag" "$defs" "$prop"
    bad=1
  fi
}

# expect_fail TAG KIND "DEFS" PROP WORD [PAN ARGS]: SPIN finds a violation of PROP.
expect_fail() {
  local tag=$1 kind=$2 defs=$3 prop=$4 word=$5; shift 5
  # shellcheck disable=SC2086
  build "$tag" "$kind" $defs || return
  run "$tag" "$prop" "$@"
  if [ "$ERRORS" != 0 ] && [ "$ERRORS" != x ] && [ -f "$OUT/$tag/handover.pml.trail" ]; then
    printf '%-5s %-28s violates %s: %s\n' "$word" "$tag" "$prop" "$STATS"
    summarise "$tag" "$defs" "$prop"
  else
    printf 'FAIL  %-28s SPIN found no violation of %s%s: %s\n' "$tag" "$prop" "$INCOMPLETE" "$STATS"
    bad=1
  fi
}

# summarise TAG "DEFS" PROP: the counterexample in plain words.
summarise() {
  local tag=$1 defs=$2 prop=$3 dir=$OUT/$tag rep
  [ -f "$dir/handover.pml.trail" ] || return 0
  rep=$dir/$prop.replay
  # shellcheck disable=SC2086
  (cd "$dir" && spin $defs -t -T -g -k handover.pml.trail "$MODEL" >"$rep" 2>&1)
  awk -v prop="$prop" '
    /^@ / { sub(/^@ /, ""); n++; step[n] = $0
            if ($0 ~ /^network/) net[++nn] = $0
            else if ($0 ~ /^operator/) op[++no] = $0
            else if ($0 ~ /CRASHED|restarted|process exits/) cr[++nc] = $0 }
    /^\t\t[a-z_0-9]+ = / { v[$1] = $3 }
    /START OF CYCLE/ { n++; step[n] = "-- from here on this repeats forever --" }
    END {
      print "      what happened:"
      for (i = 1; i <= n; i++) printf "        %2d. %s\n", i, step[i]
      printf "      network: "; if (!nn) print "delivered everything it was given"; else { print nn " act(s):"; for (i = 1; i <= nn; i++) print "        - " net[i] }
      printf "      operator: "; if (!no) print "did nothing"; else { print no " command(s):"; for (i = 1; i <= no; i++) print "        - " op[i] }
      printf "      crashes and restarts: "; if (!nc) print "none"; else { print ""; for (i = 1; i <= nc; i++) print "        - " cr[i] }
      printf "      verdict: "
      if (prop == "split" || prop == "safety" && v["s_rerun"] == 1 && v["d_took"] == 1) {
        if (v["s_running"] == 1 && v["d_running"] == 1) print "two copies of the VM RUN at once, at the source and at the destination"
        else print "two copies of the VM: the destination decided COMMITTED (it runs the VM from the hand-over point on) and the source ran its own copy again after the hand-over pause"
        print "      forced by the operator (resume --force of an UNCERTAIN VM): " (v["forced"] == 1 ? "yes" : "no")
      } else if (prop == "quit")
        print "a quit without --force was accepted although COMMIT was on its way; quit reported the VM stopped, yet the destination has it (COMMITTED)"
      else if (prop == "lost")
        print "the VM is lost: no host holds it any more, no operator ended it, and no crash took its only copy"
      else if (prop == "fresh")
        printf "the destination decided COMMITTED on a copy that is not the final state sent (memory version %s, vCPU version %s, final version %s, final pages received: %s)\n", v["d_mem"], v["d_cpu"], v["final_ver"], v["got_final"] == 1 ? "yes" : "no"
      else if (prop == "pause")
        print "the VM runs although its operator paused it and never resumed it"
      else if (prop == "resolves")
        print "the source stays UNCERTAIN (paused) forever: " (v["d_up"] == 1 ? "a destination process runs and would answer, but nobody asks it any more" : "it keeps asking, and no destination process runs to answer")
      else print "property " prop " violated"
    }' "$rep"
}

section_props() {
  echo "== safety properties, standard bounds: 1 operator command (any of pause, resume, resume --force,"
  echo "   quit, quit --force, migrate-cancel, quit at the destination), 1 host crash (either host) and"
  echo "   1 restart, unbounded cuts, delays and refusals by the network, $(grep -o 'define QCALL [0-9]*' "$MODEL" | cut -d' ' -f3) queries before resolve_outcome()'s deadline"
  for p in split lost fresh pause quit; do expect_pass base safety "" "$p"; done
  expect_pass noforce safety "-DNO_FORCE" split
}

section_wide() {
  echo "== all safety properties at once, wider bounds"
  expect_pass ops2 safety "-DOPS=2 -DCRASHES=0" safety
  expect_pass crash2 safety "-DOPS=1 -DCRASHES=2 -DRESTARTS=2" safety
}

# Not in `all` (make check): minutes and gigabytes here.
section_deep() {
  echo "== all safety properties at once, deep bounds"
  expect_pass deep_ops2 big "-DOPS=2" safety
  expect_pass deep_q3v2 big "-DQCALL=3 -DMAXV=2" safety
}

section_live() {
  echo "== liveness: the network delivers after it cut $(grep -o 'define CUTS [0-9]*' "$MODEL" | cut -d' ' -f3) connections, timers fire only when nothing"
  echo "   else can move, a destination that went down comes back; 1 operator command, 1 crash"
  expect_pass live live "-DLIVE" ends -a
  expect_pass live live "-DLIVE" resolves -a
  echo "== by design, UNCERTAIN lasts as long as no destination answers:"
  expect_fail never_back live "-DLIVE -DNEVER_BACK -DOPS=0" resolves SHOWN -a
}

section_old() {
  echo "== the old rules: SPIN must find the known split brains (shortest counterexamples)"
  expect_fail OLD_REFUSED bfs "-DOLD_REFUSED -DCRASHES=0 -DOPS=0" split FOUND
  expect_fail OLD_PAUSE bfs "-DOLD_PAUSE -DCRASHES=0" split FOUND
  expect_fail OLD_NOFENCE bfs "-DOLD_NOFENCE -DCRASHES=0 -DOPS=0" split FOUND
}

section_found() {
  echo "== found by this model (model/README.md, 'Findings'):"
  expect_fail RACY_QUIT bfs "-DRACY_QUIT -DCRASHES=0" quit FOUND
  expect_fail STRICT_LOSS bfs "-DSTRICT_LOSS -DOPS=0" lost FOUND
  echo "      (counted as a copy here: the destination's verified copy parked at READY, which it discards)"
}

section_mutants() {
  echo "== mutations: one guard removed at a time; SPIN must catch each"
  local m
  while read -r m prop defs; do
    [ -n "$m" ] || continue
    # shellcheck disable=SC2086
    expect_fail "$m" quick "-D$m $defs" "$prop" CAUGHT
  done <<'EOF'
M_FENCE               split -DCRASHES=0 -DOPS=0
M_RUN_BEFORE_DECIDE   split -DCRASHES=0 -DOPS=0
M_VOLATILE            split -DOPS=0
M_AUTH_ANSWER         split -DCRASHES=0 -DOPS=0
M_HOLDERS             pause -DCRASHES=0
M_FORCE_ANYTIME       split -DCRASHES=0
M_QUIT_GUARD          quit  -DCRASHES=0
M_END                 fresh -DCRASHES=0 -DOPS=0
M_STREAM_AUTH         fresh -DCRASHES=0 -DOPS=0
M_CANCEL_AFTER_COMMIT split -DCRASHES=0
M_ASSUME_COMMITTED    lost  -DCRASHES=0 -DOPS=0
EOF
  expect_fail M_NO_RESOLVER live "-DM_NO_RESOLVER -DLIVE -DOPS=0" resolves CAUGHT -a
}

sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(props wide live old found mutants)
t0=$SECONDS
for s in "${sections[@]}"; do
  case $s in
    props|wide|live|old|found|mutants|deep) "section_$s" ;;
    all) section_props; section_wide; section_live; section_old; section_found; section_mutants ;;
    *) echo "unknown section $s"; exit 2 ;;
  esac
done
echo "model check: $((SECONDS - t0)) s, $([ $bad -eq 0 ] && echo "every outcome as expected" || echo "UNEXPECTED OUTCOMES above")"
exit $bad
