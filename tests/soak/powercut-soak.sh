#!/usr/bin/env bash
# Soak: the simulated power-cut tests with many more cycles (default 500
# each): the primary, the replica, and the relay with an async and then a
# sync b-c link.  Manual; not run by ctest.  Same checks as the CI tests
# (see tests/integration/test-powercut-*.sh).  Every test runs even if an
# earlier one failed; the exit status is nonzero if any did.
#   BUILDDIR=build tests/soak/powercut-soak.sh 1000
# POWERCUT_KEEP_GOING=1 counts failed checks instead of stopping at the
# first, POWERCUT_SAVE=DIR keeps the state of the first failure
# (tests/integration/powerlib.sh).
here=$(dirname "$0")/../integration
n=${1:-500}
rc=0
bash "$here/test-powercut-primary.sh" "$n" || rc=1
bash "$here/test-powercut-replica.sh" "$n" || rc=1
RELAY_MODE=async bash "$here/test-powercut-relay.sh" "$n" || rc=1
RELAY_MODE=sync bash "$here/test-powercut-relay.sh" "$n" || rc=1
exit $rc
