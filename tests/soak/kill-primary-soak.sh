#!/usr/bin/env bash
# Soak: SIGKILL of the primary under write load, N cycles (default 200).
# Manual; not run by ctest.  Same checks as the CI test (every acknowledged
# write present on the primary and the replica after each restart, copies
# identical at the end); see tests/integration/test-kill-primary.sh.
#   BUILDDIR=build tests/soak/kill-primary-soak.sh 500
exec bash "$(dirname "$0")/../integration/test-kill-primary.sh" "${1:-200}"
