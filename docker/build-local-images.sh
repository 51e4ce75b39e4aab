#!/usr/bin/env bash
# Builds the images the container tests run, without pulling anything: no registry is reachable in
# CI, and the Docker engine starts with no images. Both images are FROM scratch, filled with files
# from this machine:
#
#   cync-bridge:local        the release binary (cargo build --release first) + its libraries,
#                            the user Dockerfile's runtime contract (docker/scratch.Dockerfile);
#                            also the simulator: same image, command `sim ...`
#   eclipse-mosquitto:local  Debian's /usr/sbin/mosquitto + its libraries, configured by
#                            config/mosquitto/mosquitto.conf (docker/mosquitto.Dockerfile)
#
# Settings (environment): CYNC_BRIDGE_BINARY (default $CARGO_TARGET_DIR or ./target, then
# release/cync-bridge), CYNC_BRIDGE_LOCAL_IMAGE, CYNC_MOSQUITTO_LOCAL_IMAGE, MOSQUITTO_BINARY.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
bridge_bin="${CYNC_BRIDGE_BINARY:-$target_dir/release/cync-bridge}"
bridge_image="${CYNC_BRIDGE_LOCAL_IMAGE:-cync-bridge:local}"
mosquitto_bin="${MOSQUITTO_BINARY:-/usr/sbin/mosquitto}"
mosquitto_image="${CYNC_MOSQUITTO_LOCAL_IMAGE:-eclipse-mosquitto:local}"

die() { echo "build-local-images: $*" >&2; exit 1; }
[ -x "$bridge_bin" ] || die "$bridge_bin not found: run 'cargo build --release' first (or set CYNC_BRIDGE_BINARY)"
[ -x "$mosquitto_bin" ] || die "$mosquitto_bin not found: apt-get install mosquitto (or set MOSQUITTO_BINARY)"
command -v docker >/dev/null || die "docker CLI not found"
command -v ldd >/dev/null || die "ldd not found"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

# copy_into ROOTFS PATH...: copies each file to the same absolute path under ROOTFS, following
# symlinks (Debian's /lib is a symlink to usr/lib; in the image it is a plain folder).
copy_into() {
  local rootfs="$1"; shift
  local path
  for path in "$@"; do
    mkdir -p "$rootfs$(dirname "$path")"
    cp -L "$path" "$rootfs$path"
  done
}

# copy_with_libraries ROOTFS BINARY DEST: the binary at DEST plus every library ldd resolves for
# it and the dynamic loader, at their paths on this machine (where the loader looks for them).
copy_with_libraries() {
  local rootfs="$1" binary="$2" dest="$3" libs
  mkdir -p "$rootfs$(dirname "$dest")"
  cp -L "$binary" "$rootfs$dest"
  chmod 0755 "$rootfs$dest"
  if ldd "$binary" | grep -q 'not found'; then
    die "$binary needs libraries that are not installed: $(ldd "$binary" | grep 'not found')"
  fi
  # "libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x…)" and "/lib64/ld-linux-x86-64.so.2 (0x…)"
  libs="$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)"
  # shellcheck disable=SC2086 # one path per word, none with spaces
  copy_into "$rootfs" $libs
}

# common_files ROOTFS: what a glibc program expects beyond its libraries.
common_files() {
  local rootfs="$1"
  mkdir -p "$rootfs/etc" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    copy_into "$rootfs" /etc/ssl/certs/ca-certificates.crt
  fi
  if [ -d /usr/share/zoneinfo ]; then
    mkdir -p "$rootfs/usr/share"
    cp -a /usr/share/zoneinfo "$rootfs/usr/share/zoneinfo"
    ln -sf /usr/share/zoneinfo/Etc/UTC "$rootfs/etc/localtime"
  fi
  printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
}

build() { # build TAG DOCKERFILE CONTEXT
  # The classic builder: FROM scratch needs no frontend image, which BuildKit would try to pull.
  # (Its deprecation notice on stderr is dropped; real errors still fail the build.)
  DOCKER_BUILDKIT=0 docker build --quiet --tag "$1" --file "$2" "$3" 2> >(grep -v -e DEPRECATED \
    -e 'BuildKit is currently disabled' -e 'environment-variable' -e '^$' >&2) >/dev/null
  echo "built $1 ($(docker image inspect --format '{{.Size}}' "$1") bytes)"
}

# --- cync-bridge ---
b="$stage/bridge"
mkdir -p "$b/rootfs" "$b/data"
copy_with_libraries "$b/rootfs" "$bridge_bin" /usr/local/bin/cync-bridge
# As the user Dockerfile does: line tables off (profile.release keeps them), symbols kept.
if command -v strip >/dev/null; then strip --strip-debug "$b/rootfs/usr/local/bin/cync-bridge"; fi
common_files "$b/rootfs"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\ncync:x:10001:10001:cync-bridge:/data:/usr/sbin/nologin\n' \
  >"$b/rootfs/etc/passwd"
printf 'root:x:0:\ncync:x:10001:\n' >"$b/rootfs/etc/group"
cp "$root/docker/scratch.Dockerfile" "$b/Dockerfile"
build "$bridge_image" "$b/Dockerfile" "$b"

# --- mosquitto ---
m="$stage/mosquitto"
mkdir -p "$m/rootfs" "$m/mosquitto/config" "$m/mosquitto/data" "$m/mosquitto/log"
copy_with_libraries "$m/rootfs" "$mosquitto_bin" /usr/sbin/mosquitto
common_files "$m/rootfs"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nmosquitto:x:1883:1883:mosquitto:/mosquitto:/usr/sbin/nologin\n' \
  >"$m/rootfs/etc/passwd"
printf 'root:x:0:\nmosquitto:x:1883:\n' >"$m/rootfs/etc/group"
cp "$root/config/mosquitto/mosquitto.conf" "$m/mosquitto/config/mosquitto.conf"
cp "$root/docker/mosquitto.Dockerfile" "$m/Dockerfile"
build "$mosquitto_image" "$m/Dockerfile" "$m"
