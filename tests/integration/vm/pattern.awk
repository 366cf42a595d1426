# Deterministic test pattern for the kernel-NBD VM harness.
#
#   busybox awk -v mib=4 -v seed=blockrelay -f pattern.awk > data.bin
#
# Emits mib MiB made of 64-byte lines.  Each line starts with its own byte
# offset (12 hex digits) and the seed, then filler that rotates with the line
# number, so misplaced, duplicated or stale blocks change the checksum.  The
# VM runs this with the same /bin/busybox binary as the host, so the host can
# recompute the expected checksum byte for byte.
BEGIN {
  n = mib * 16384
  pad = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
  pad = pad pad
  for (i = 0; i < n; i++) {
    s = sprintf("%012x %s ", i * 64, seed) substr(pad, i % 64 + 1, 64)
    print substr(s, 1, 63)
  }
}
