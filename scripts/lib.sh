# Shell helpers shared by the set-up scripts (sourced, not run).
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

# apt_install PACKAGE...: Debian packages, only on Debian-like systems.
apt_install() {
  command -v apt-get >/dev/null || { echo "setup: please install: $*" >&2; return 1; }
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Flags for every podman command that runs a container (podman run, and podman build's RUN steps).
# runc, not crun: crun refuses the hybrid cgroup v1/v2 layout some VMs (this one) have. Explicit
# ulimits: without CAP_SYS_RESOURCE the runtime cannot raise them to podman's defaults (1M files).
# tests/integration/test_image.py uses the same flags.
podman_flags() {
  local flags=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
  command -v runc >/dev/null && flags=(--runtime runc "${flags[@]}")
  printf '%s\n' "${flags[@]}"
}
