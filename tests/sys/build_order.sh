# `make -jN` on a machine that lacks packages must install them before it compiles
# anything (issue 9 item 8): every compile and link waits for the dependency step.
# A stand-in dependency step that takes 2 s, and a compiler that refuses to run
# before it finished, build the whole tree in parallel.
. "$(dirname "$0")/../lib.sh"
cat > "$T/deps.sh" <<X
#!/bin/sh
sleep 2
touch "$T/deps-done"
X
cat > "$T/cc" <<X
#!/bin/sh
[ -e "$T/deps-done" ] || { echo "compiler ran before the dependency step finished" >&2; exit 3; }
exec gcc "\$@"
X
chmod +x "$T/deps.sh" "$T/cc"
make -C "$ROOT" -j4 B="$T/b" CC="$T/cc" GUEST_CC="$T/cc" DEPS_SH="$T/deps.sh" "$T/b/sealvm" guests \
  >"$T/make.log" 2>&1 || { tail -n 20 "$T/make.log"; fail "parallel build compiled before the dependency step"; }
[ -x "$T/b/sealvm" ] || fail "no binary"
echo ok
