#!/usr/bin/env bash
# usage: test_interrupt.sh WAFERMESH_BINARY SOURCE_DIR MPIEXEC
# What is left behind when a job is interrupted, and what is said about it:
# - launch/run: a rank killed by a signal (kill -9, SIGABRT) gives one stderr line naming the
#   rank and the signal, mpirun ends the other ranks, no process is left; a job ended by mpirun
#   itself (Ctrl-C) prints no such line;
# - SIGTERM while the results file is being written (the temporary X.tmpPID exists) leaves
#   neither X.tmpPID nor X;
# - generate's placement progress goes to stderr only on a terminal.
# Prints "ok - ..." / "FAIL - ..."; fails if any check failed.
set -u
bin=$1 src=$2 mpiexec=$3
. "$(dirname "$0")/harness.sh"
cd "$src"
export WM_BINARY=$bin
descendants() { local p; for p in $(pgrep -P "$1"); do echo "$p"; descendants "$p"; done; }
# The wafermesh process of rank $2 under launch/run's pid $1 (empty until it runs).
rank_pid() {
  local w c
  for w in $(descendants "$1"); do
    [ "$( { tr '\0' '\n' < /proc/$w/environ; } 2>/dev/null | grep '^OMPI_COMM_WORLD_RANK=' | cut -d= -f2)" = "$2" ] || continue
    for c in $(pgrep -P "$w"); do [ "$(readlink /proc/$c/exe)" = "$(readlink -f "$bin")" ] && echo "$c"; done
  done | head -1
}
wait_rank() {  # PID RANK: waits up to 60 s for the rank's process
  local r=
  for _ in $(seq 600); do r=$(rank_pid "$1" "$2"); [ -n "$r" ] && break; sleep 0.1; done
  echo "$r"
}
# Every job of this script carries a marker in its environment: a process left over is found by
# it, whatever else runs on the machine (ctest -j).
export WM_TEST_JOB="interrupt-$$"
left_over() {
  local p
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$$" ] && continue
    { tr '\0' '\n' < "$p/environ"; } 2>/dev/null | grep -qx "WM_TEST_JOB=$WM_TEST_JOB" && \
      [ "$(readlink "$p/exe")" = "$(readlink -f "$bin")" ] && echo "${p#/proc/}"
  done
}

# A long job: demo on the whole WSE-2 mesh with 1,000 shifts (about 20 s at 2 ranks; the default
# 4 take under a second, which a loaded machine's start-up and the 0.5 s below can outlast, and a
# job that ended before its signal is not the case under test), no results file.
long=(demo --shifts 1000 --output "")

for sig in KILL ABRT; do  # (not SEGV: AddressSanitizer takes that one over in the sanitizer build)
  launch/run -n 2 "${long[@]}" >"$tmp/run.out" 2>"$tmp/run.err" &
  run=$!
  r1=$(wait_rank "$run" 1)
  [ -n "$r1" ] || bad "$sig: rank 1 never started"
  sleep 0.5
  kill -"$sig" "$r1"
  timeout 60 bash -c "while kill -0 $run 2>/dev/null; do sleep 0.1; done"
  wait "$run"; rc=$?
  lines=$(grep -c '^launch/run: ' "$tmp/run.err")
  if [ "$lines" -eq 1 ] && grep -qE "^launch/run: rank 1 \(pid $r1 on .*\) died of signal [0-9]+ \(SIG$sig\)$" "$tmp/run.err" \
     && [ "$rc" -ne 0 ] && [ -z "$(left_over)" ]; then
    ok "rank 1 killed by SIG$sig: $(grep '^launch/run: ' "$tmp/run.err"), exit $rc, no process left"
  else
    bad "rank 1 killed by SIG$sig: exit $rc, left: '$(left_over)', stderr: $(head -c 600 "$tmp/run.err")"
  fi
done

# Ctrl-C: mpirun ends the ranks itself, nobody "died".
launch/run -n 2 "${long[@]}" >"$tmp/run.out" 2>"$tmp/run.err" &
run=$!
r0=$(wait_rank "$run" 0)
sleep 0.5
mpirun_pid=$(pgrep -P "$run" mpirun || echo "$run")
kill -INT "$mpirun_pid"
timeout 60 bash -c "while kill -0 $run 2>/dev/null; do sleep 0.1; done"
wait "$run"; rc=$?
if ! grep -q "died of signal" "$tmp/run.err" && [ "$rc" -ne 0 ] && [ -z "$(left_over)" ]; then
  ok "Ctrl-C to mpirun: exit $rc, no 'died' line, no process left"
else
  bad "Ctrl-C to mpirun: exit $rc, left: '$(left_over)', stderr: $(head -c 600 "$tmp/run.err")"
fi

# SIGTERM to rank 0 while it writes the results file: neither X.tmpPID nor X remains. demo on
# the whole mesh writes 7 per-PE maps of 745,500 PEs (40 MB); the temporary file is polled for.
out=$tmp/res/demo.h5
mkdir -p "$tmp/res"
caught=0
for attempt in 1 2 3; do
  rm -f "$tmp"/res/*
  launch/run -n 2 demo --output "$out" >"$tmp/run.out" 2>"$tmp/run.err" &
  run=$!
  t=
  for _ in $(seq 20000); do
    t=$(ls "$tmp"/res/demo.h5.tmp* 2>/dev/null | head -1)
    [ -n "$t" ] && break
    kill -0 "$run" 2>/dev/null || break
    sleep 0.005
  done
  if [ -n "$t" ]; then
    kill -TERM "${t##*.tmp}" 2>/dev/null && caught=1
  fi
  timeout 60 bash -c "while kill -0 $run 2>/dev/null; do sleep 0.1; done"
  wait "$run"
  [ "$caught" -eq 1 ] && break
done
if [ "$caught" -eq 0 ]; then
  bad "never saw the temporary results file to interrupt (3 attempts)"
elif [ -z "$(ls "$tmp/res")" ] && [ -z "$(left_over)" ]; then
  ok "SIGTERM to rank 0 during the results write ($(basename "$t")): nothing left in the output directory"
else
  bad "SIGTERM during the results write left: $(ls "$tmp/res" | tr '\n' ' ') $(left_over)"
fi

# Progress of generate: nothing on a stderr that is a file; the progress line on a terminal.
gen=(generate --model configs/models/stories260K.ini --config configs/laptop.ini --steps 8 --output "")
"$bin" "${gen[@]}" >"$tmp/g.out" 2>"$tmp/g.err"
rc=$?
[ "$rc" -eq 0 ] && [ ! -s "$tmp/g.err" ] && grep -q "placed in" "$tmp/g.out" \
  && ok "generate with stderr in a file: stderr empty" || bad "generate with stderr in a file: exit $rc, stderr: $(head -c 300 "$tmp/g.err" | od -c | head -3)"
if command -v script >/dev/null; then
  script -qec "$(printf '%q ' "$bin" "${gen[@]}") >/dev/null" /dev/null >"$tmp/tty.txt" 2>&1
  grep -q "\[generate\] placing layer" "$tmp/tty.txt" \
    && ok "generate on a terminal: the progress line" || bad "generate on a terminal: no progress line: $(head -c 300 "$tmp/tty.txt")"
else
  bad "script (util-linux) is missing: cannot check the progress line on a terminal"
fi

echo "test_interrupt: $fails failure(s)"
[ "$fails" -eq 0 ]
