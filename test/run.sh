#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the suites need, builds, type-checks,
# runs every node:test suite. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in mosquitto:mosquitto socat:socat chromium:chromium \
  qemu-aarch64-static:qemu-user-static aarch64-linux-gnu-strip:binutils-aarch64-linux-gnu aarch64-linux-gnu-g++:g++-aarch64-linux-gnu \
  g++:g++ make:make python3:python3 xz:xz-utils faketime:faketime dovecot:dovecot-imapd; do
  bin=${pair%%:*}; pkg=${pair##*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need+=("$pkg")
done
# the device image (test/image/image.test.ts): rootfs, partitions, read-back, boot
for pair in mmdebstrap:mmdebstrap update-binfmts:binfmt-support arch-test:arch-test sfdisk:fdisk mkfs.vfat:dosfstools mcopy:mtools \
  mke2fs:e2fsprogs debugfs:e2fsprogs zstd:zstd qemu-system-aarch64:qemu-system-arm; do
  bin=${pair%%:*}; pkg=${pair##*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need+=("$pkg")
done
# a real PostgreSQL for the Data Pipeline Hand's source and sink (test/helpers/postgres.ts runs its own cluster)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
# the arm64 binary's C library, for qemu-aarch64-static -L /usr/aarch64-linux-gnu
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || need+=(libc6-arm64-cross)
# Node 26's official builds (the project's Node, and both binaries) link libatomic.so.1
ldconfig -p 2>/dev/null | grep -q 'libatomic.so.1 ' || need+=(libatomic1)
[ -e /usr/aarch64-linux-gnu/lib/libatomic.so.1 ] || need+=(libatomic1-arm64-cross)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test: installing ${need[*]} (apt)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "test: missing ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi
[ -d node_modules ] || npm ci --no-audit --no-fund

npm run --silent build
npm run --silent typecheck
npm run --silent lint
npm run --silent test:unit
