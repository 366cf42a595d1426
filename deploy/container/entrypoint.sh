#!/bin/sh
# blockrelay-entrypoint ROLE [ARGS...]: the container image's entry point.
# One image runs either role of a node:
#
#   primary       nbdkit with the blockrelay plugin in the foreground,
#                 serving every volume of the node as an NBD export named
#                 after the volume: on the unix socket $BLOCKRELAY_NBD_SOCKET
#                 (default /run/blockrelay/nbd.sock, put it on a volume
#                 shared with the application), or on TCP port
#                 $BLOCKRELAY_NBD_PORT when that is set (one nbdkit serves
#                 one kind of socket).  ARGS go to nbdkit before the plugin.
#   replica       blockrelayd; ARGS are blockrelayd options.
#   health        exit 0 when the node's process answers on its control
#                 socket (the image's HEALTHCHECK, and Kubernetes probes).
#   check-config  validate the topology.
#   blockrelay    the operator CLI: blockrelay ARGS (e.g. status --json).
#
# Environment: BLOCKRELAY_CONFIG (default /etc/blockrelay/blockrelay.yaml),
# BLOCKRELAY_NODE (default: the host name, so the pods of a StatefulSet are
# the nodes named after them).  Both roles stop cleanly on SIGTERM.
set -eu

CONFIG=${BLOCKRELAY_CONFIG:-/etc/blockrelay/blockrelay.yaml}
NODE=${BLOCKRELAY_NODE:-$(hostname)}
role=${1:-}
[ $# -gt 0 ] && shift

case $role in
primary)
  if [ -n "${BLOCKRELAY_NBD_PORT:-}" ]; then
    set -- -p "$BLOCKRELAY_NBD_PORT" "$@"
  else
    sock=${BLOCKRELAY_NBD_SOCKET:-/run/blockrelay/nbd.sock}
    rm -f "$sock"       # a socket left by a previous run of this container
    set -- -U "$sock" "$@"
  fi
  exec nbdkit --foreground "$@" blockrelay config="$CONFIG" node="$NODE"
  ;;
replica)
  exec blockrelayd --config "$CONFIG" --node "$NODE" "$@"
  ;;
health)
  exec blockrelay status --config "$CONFIG" --node "$NODE" >/dev/null
  ;;
check-config)
  exec blockrelay check-config "$CONFIG"
  ;;
blockrelay)
  exec blockrelay "$@"
  ;;
*)
  echo "usage: blockrelay-entrypoint primary|replica|health|check-config|blockrelay [ARGS...]" >&2
  [ -n "$role" ] && echo "blockrelay-entrypoint: unknown role '$role'" >&2
  exit 2
  ;;
esac
