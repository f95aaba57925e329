#!/usr/bin/env bash
# Remove what tests/apptainer/apptainer-up.sh made: the wrapper (only if it is ours) and the roots.
set -euo pipefail
DIR="${LLEM_APPTAINER_DIR:-/var/lib/llem-apptainer}"
BIN="${LLEM_APPTAINER_BIN:-/usr/local/bin}"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
if grep -qF "# llem-apptainer: written by" "$BIN/apptainer" 2>/dev/null; then $SUDO rm -f "$BIN/apptainer"; fi
$SUDO rm -rf "$DIR"
echo "apptainer: wrapper and roots removed"
