#!/usr/bin/env bash
# Installs the pgvector extension into the local PostgreSQL server's extension directory.
#
# Debian bookworm does not package pgvector, so this builds Debian trixie's *source*
# package (pgvector 0.8.x) against bookworm's postgresql-server-dev-NN. Needs root (apt).
# Usage: install-pgvector.sh PG_CONFIG
set -euo pipefail
PG_CONFIG="${1:?usage: install-pgvector.sh PATH_TO_PG_CONFIG}"
major="$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')"
sharedir="$("$PG_CONFIG" --sharedir)"
if [ -f "$sharedir/extension/vector.control" ]; then
  echo "pgvector is already installed in $sharedir/extension"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "pgvector is missing and installing it needs root (apt-get); run as root or install postgresql-$major-pgvector" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
src_list=/etc/apt/sources.list.d/kb-trixie-src.sources
if [ ! -f "$src_list" ]; then
  cat > "$src_list" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -qq || echo "warning: apt-get update reported errors; trying to continue" >&2
apt-get install -y -qq "postgresql-server-dev-$major" build-essential dpkg-dev >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get source -qq pgvector >/dev/null
cd pgvector-*/
make -s PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >/dev/null
make -s PG_CONFIG="$PG_CONFIG" install >/dev/null
echo "pgvector installed into $sharedir/extension"
