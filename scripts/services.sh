#!/usr/bin/env bash
# Installs the Redis and PostgreSQL server packages the store tests run (tests start and stop
# their own servers; this only provides the binaries). Idempotent and silent when both are
# present. It never fails the caller: without the packages, those tests skip and say why.
# SMART_SKIP_SERVICES=1 skips the install.
set -uo pipefail
[ "${SMART_SKIP_SERVICES:-}" = 1 ] && exit 0

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0

warn() { echo "services.sh: $*; the Redis/PostgreSQL store tests will be skipped" >&2; exit 0; }
command -v apt-get >/dev/null 2>&1 || warn "${missing[*]} missing and no apt-get to install them"
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || warn "${missing[*]} missing; not root and no sudo"
  as_root=(sudo -n)
fi
echo "services.sh: installing ${missing[*]} (for the store tests)" >&2
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
# A fresh machine may have no package lists yet; an update that fails leaves the install to try.
if ! "${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
  "${as_root[@]}" apt-get update -q >>"$log" 2>&1
  "${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$log" 2>&1 \
    || { tail -n 5 "$log" >&2; rm -f "$log"; warn "apt-get install ${missing[*]} failed"; }
fi
rm -f "$log"
