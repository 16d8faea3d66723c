# Shared by the tests/cli/*.sh scripts (sourced after they set bin, src and mpiexec): a scratch
# directory removed on exit, the ok/bad tallies ("ok - ..." / "FAIL - ..."), and mpi N command...,
# which runs under mpirun with a timeout of $mpi_timeout seconds (default 300); --quiet: mpirun's
# own banner about non-zero exits is not ours to test.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
ok() { echo "ok - $*"; passes=$((passes + 1)); }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }
mpi() { local n=$1; shift; timeout "${mpi_timeout:-300}" "$mpiexec" --quiet --oversubscribe -np "$n" "$@"; }
