# Shell helpers shared by the set-up scripts (sourced, not run).
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

# apt_install PACKAGE...: Debian packages, only on Debian-like systems.
apt_install() {
  command -v apt-get >/dev/null || { echo "setup: please install: $*" >&2; return 1; }
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
