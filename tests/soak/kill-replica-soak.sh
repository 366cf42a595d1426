#!/usr/bin/env bash
# Soak: SIGKILL of the replica under write load, N cycles (default 200).
# Manual; not run by ctest.  Same checks as the CI test (writes never fail,
# every acknowledged write on the replica after each convergence, copies
# identical at the end); see tests/integration/test-kill-replica.sh.
#   BUILDDIR=build tests/soak/kill-replica-soak.sh 500
exec bash "$(dirname "$0")/../integration/test-kill-replica.sh" "${1:-200}"
