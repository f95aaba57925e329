#!/usr/bin/env bash
# Provide a real `apptainer` (CI and integration tests) on a Debian bookworm machine, which
# packages none: Debian unstable's apptainer (1.4.x) and squashfs-tools, installed by mmdebstrap
# into a root of their own (unstable's glibc: apptainer needs >= 2.38, bookworm has 2.36), and a
# thin wrapper on PATH that runs the real binary inside that root.
#  - the root: $LLEM_APPTAINER_DIR/root-<recipe hash> (default /var/lib/llem-apptainer), made
#    once per recipe (about 15 s and 270 MB); `root default capabilities = file` in its
#    apptainer.conf, since root on these VMs lacks some capabilities (CAP_SYS_RESOURCE) and
#    apptainer's default asks for all of them;
#  - the wrapper: $LLEM_APPTAINER_BIN/apptainer (default /usr/local/bin). Each call enters a
#    private mount namespace, binds the host's own folders (/proc /sys /dev /tmp /run /home
#    /root /work ..., everything at the top level except the root's OS folders) and the
#    host's identity files (/etc/passwd, group, hosts, resolv.conf, localtime, hostname: the
#    ones apptainer reads or binds into containers) onto the same paths in the root, makes
#    the root / (pivot_root: apptainer refuses a chroot), and execs apptainer there, in the
#    caller's working folder. Every step is an exec: the caller's process
#    group holds apptainer itself, so Ctrl+C and timeouts reach it as they would on a cluster.
#    It needs root (unshare -m, pivot_root), as CI has.
# Idempotent: when an apptainer that is not this wrapper already answers, it says so and exits 0.
# Needs mmdebstrap and the Debian archive (unstable suite). Remove with tests/apptainer/apptainer-down.sh.
set -euo pipefail
DIR="${LLEM_APPTAINER_DIR:-/var/lib/llem-apptainer}"
BIN="${LLEM_APPTAINER_BIN:-/usr/local/bin}"
MARK="# llem-apptainer: written by tests/apptainer/apptainer-up.sh"
PACKAGES=apptainer,squashfs-tools
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

existing=$(command -v apptainer || true)
if [ -n "$existing" ] && ! grep -qF "$MARK" "$existing" 2>/dev/null && "$existing" version >/dev/null 2>&1; then
  echo "apptainer: $existing $("$existing" version) already answers; nothing to do"
  exit 0
fi
command -v mmdebstrap >/dev/null || { echo "error: mmdebstrap is not installed; fix: apt-get install mmdebstrap" >&2; exit 1; }

recipe=$(printf '%s %s' "$PACKAGES" "$(sha256sum < "$0")" | sha256sum | cut -c1-12)
ROOT="$DIR/root-$recipe"
if [ ! -x "$ROOT/usr/bin/apptainer" ]; then
  # The archive this machine uses, unstable suite. A frozen mirror's Release file may be past
  # its Valid-Until date: that is not checked (the packages are still verified by its keys).
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  echo "apptainer: making $ROOT (mmdebstrap sid: $PACKAGES, from ${mirror:-the default mirror})"
  $SUDO rm -rf "$ROOT.tmp"
  $SUDO mkdir -p "$DIR"
  $SUDO mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --customize-hook='sed -i "s/^root default capabilities = full/root default capabilities = file/" "$1/etc/apptainer/apptainer.conf"' \
    sid "$ROOT.tmp" ${mirror:+"$mirror"}
  $SUDO mv "$ROOT.tmp" "$ROOT"
  # Roots of earlier recipes go.
  $SUDO find "$DIR" -mindepth 1 -maxdepth 1 -name 'root-*' ! -name "root-$recipe" -exec rm -rf {} +
fi

tmp=$(mktemp)
cat > "$tmp" <<EOF
#!/bin/sh
$MARK
# Debian unstable's apptainer, run inside its own root ($ROOT) with this machine's folders
# bound in at the same paths; see tests/apptainer/apptainer-up.sh. Needs root.
ROOT=$ROOT
EOF
cat >> "$tmp" <<'EOF'
[ "$(id -u)" = 0 ] || { echo "FATAL:   this apptainer (a test wrapper) needs root" >&2; exit 255; }
exec unshare --mount --propagation private /bin/sh -c '
R=$1; W=$PWD; shift
mount --bind "$R" "$R"  # a mount point of its own: pivot_root and apptainer need / to be one
for d in /*; do
  case "${d#/}" in bin|boot|etc|lib|lib32|lib64|libx32|sbin|usr|var|lost+found) continue ;; esac
  [ -d "$d" ] && [ ! -L "$d" ] || continue
  mkdir -p "$R$d" && mount --rbind "$d" "$R$d"
done
[ -d /var/tmp ] && mount --rbind /var/tmp "$R/var/tmp"
for f in /etc/passwd /etc/group /etc/hosts /etc/resolv.conf /etc/localtime /etc/hostname; do
  [ -e "$f" ] || continue
  [ -e "$R$f" ] || touch "$R$f"
  mount --bind "$f" "$R$f"
done
cd "$R" && mkdir -p .host && pivot_root . .host && cd / && umount -l /.host || exit 255
cd "$W" 2>/dev/null || cd /
exec /usr/bin/apptainer "$@"
' sh "$ROOT" "$@"
EOF
$SUDO install -m 755 "$tmp" "$BIN/apptainer"
rm -f "$tmp"
echo "apptainer: $BIN/apptainer -> $ROOT ($("$BIN/apptainer" version))"
