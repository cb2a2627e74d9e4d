#!/usr/bin/env bash
# Build the worker's container image with podman, offline, and tag it j7507-worker:VERSION.
#
#   scripts/build-image.sh [--base IMAGE] [--tag TAG]
#
# Without --base, the base is a minimal Debian bookworm root filesystem with python3 from Debian's
# packages, made by mmdebstrap and imported with `podman import`; the root filesystem is cached in
# $J7507_IMAGE_CACHE (default ~/.cache/j7507-worker), so only the first run downloads packages.
# With --base python:3.11-slim-bookworm (or any Debian-like image with python3 and venv) it builds
# on that instead. The project's wheels are built on the host into dist/wheels: `podman build`
# runs with --network none. Prints the tag on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

base=""
tag=""
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

python="${PYTHON:-python3}"
[ -x .venv/bin/python ] && python=.venv/bin/python
version="$("$python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
tag="${tag:-j7507-worker:$version}"

command -v podman >/dev/null || apt_install podman
command -v runc >/dev/null || apt_install runc || true
mapfile -t flags < <(podman_flags)

if [ -z "$base" ]; then
  command -v mmdebstrap >/dev/null || apt_install mmdebstrap
  # Everything that shapes the root filesystem is in the recipe; its digest names the cache entry.
  suite=bookworm
  packages=python3,python3-venv,passwd
  recipe="mmdebstrap --variant=essential $suite $packages nodoc v1"
  key="$(printf '%s' "$recipe" | sha256sum | cut -c1-12)"
  cache="${J7507_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/j7507-worker}"
  rootfs="$cache/rootfs-$suite-$key.tar"
  if [ ! -s "$rootfs" ]; then
    mkdir -p "$cache"
    echo "build-image: making the Debian $suite root filesystem (cached in $rootfs)" >&2
    # essential + python3: no apt, no shell tools beyond what dpkg needs; docs, man pages and
    # locales are left out. Written to a temporary name so an interrupted run leaves no cache.
    mmdebstrap --quiet --format=tar --variant=essential --include="$packages" \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      "$suite" "$rootfs.partial" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    mv "$rootfs.partial" "$rootfs"
  fi
  base="localhost/j7507-base:$suite-$key"
  if ! podman image exists "$base"; then
    podman import --quiet "$rootfs" "$base" >/dev/null
  fi
fi

# The project's wheel, then binary wheels of its runtime dependencies for CPython 3.11 on glibc
# Linux of this machine's architecture (whatever the host's own Python is).
rm -rf dist/wheels
"$python" -m pip wheel --quiet --no-deps --wheel-dir dist/wheels .
arch="$(uname -m)"
"$python" -m pip download --quiet --dest dist/wheels --only-binary=:all: \
  --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
  --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" --platform "manylinux2014_$arch" \
  --platform any dist/wheels/j7507_worker-*.whl

previous="$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
# No layer cache: a RUN step's cache key does not cover what it bind-mounts (the wheels), so a
# cached build would keep the previous code. The build takes seconds without it.
podman build --quiet --no-cache --layers=false "${flags[@]}" --network none --ignorefile deploy/Dockerfile.dockerignore \
  -f deploy/Dockerfile --build-arg PYTHON_IMAGE="$base" --build-arg VERSION="$version" -t "$tag" . >/dev/null
# The image the tag pointed to before is now untagged: remove it unless a container still uses it.
current="$(podman image inspect --format '{{.Id}}' "$tag")"
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  podman rmi "$previous" >/dev/null 2>&1 || true
fi
echo "$tag"
