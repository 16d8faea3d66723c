#!/usr/bin/env bash
# The sanitizer pass (.ci/run runs it after the normal suite): builds the project a second time
# with AddressSanitizer + UndefinedBehaviorSanitizer in build-asan/ (cmake -DWM_SANITIZE=ON) and
# runs the test suite there, except the SLURM test (label slurm). Both sanitizers stop at their
# first report (halt_on_error=1) and write it to a file under build-asan/sanitizer-reports/; the
# pass fails if any test fails or any report was written (so a report in a process whose exit
# code a test ignores still counts). LeakSanitizer ignores only OpenMPI's own allocations
# (tests/sanitizers/lsan.supp). Extra arguments go to ctest (e.g. -R corpus).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
jobs=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
cmake -S . -B build-asan -DWM_SANITIZE=ON
cmake --build build-asan -j "$jobs"
reports=$root/build-asan/sanitizer-reports
rm -rf "$reports"
mkdir -p "$reports"
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:log_path=$reports/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"
# use_tls=0: LeakSanitizer does not scan thread-local storage. With it on, the leak check of a
# process that exits early (wafermesh --help, an unknown command) crashed in LSan's own tracer on
# a corrupted dynamic-TLS range ("Tracer caught signal 11", DTLS of a dlopen'ed library): a fault
# of the checker, not a report. Without TLS scanning, glibc's dlopen bookkeeping shows as a leak;
# lsan.supp names it.
export LSAN_OPTIONS="use_tls=0:suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0"
# The bad-input corpus at 1 rank only: under the sanitizers each run costs about a second (0.4 s of
# it LeakSanitizer's check at exit), and its 2-rank runs (no hang, one line from one rank) are the
# normal suite's; here it is the error paths' memory that is checked.
export WM_CORPUS_RANKS=1
rc=0
ctest --test-dir build-asan -LE slurm --output-on-failure "$@" || rc=$?
if [ -n "$(ls -A "$reports")" ]; then
  echo "sanitizers: $(ls "$reports" | wc -l) report(s):"
  for f in "$reports"/*; do echo "==== $f"; cat "$f"; done
  rc=1
fi
[ "$rc" -eq 0 ] && echo "sanitizers: no report, every test passed" || echo "sanitizers: FAILED"
exit "$rc"
