#!/usr/bin/env bash
# Installs the system packages the dev stack and the tests use (Debian/Ubuntu):
# openssl (dev certificates), redis-server, nginx-light (proxy-mode tests), util-linux (prlimit).
# Node.js 20 and Go ≥ 1.24 (to build FerretDB) must already be installed.
# The dev and test code also installs redis-server and nginx itself when run as root.
set -euo pipefail
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v redis-server >/dev/null || need+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v prlimit >/dev/null || need+=(util-linux)
if [ ${#need[@]} -eq 0 ]; then
  echo "prerequisites present: openssl, redis-server, nginx, prlimit"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${need[*]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
