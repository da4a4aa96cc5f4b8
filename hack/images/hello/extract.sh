#!/bin/sh
# mmdebstrap extract hook for hello (--variant=extract --include=busybox-static,
# postgresql-client-15): turn the unpacked packages into the image, with no package manager
# and nothing else from Debian: busybox, and psql with the shared libraries it loads.
set -eu
root=$1
here=$(dirname "$0")

# psql (for GET /visits) and what it needs at run time: its ELF interpreter and the
# libraries it links (DT_NEEDED), recursively. It needs no other file (no gconv, locale,
# config: -X, C locale, NSS dns/files are in libc), so everything else the packages
# brought (perl for pg_wrapper, dpkg, tar, the other client tools, ...) is dropped.
command -v readelf >/dev/null || { echo "extract.sh: readelf (binutils) is needed" >&2; exit 1; }
set -- "$root"/usr/lib/postgresql/*/bin/psql
if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "extract.sh: expected one psql, found: $*" >&2
  exit 1
fi
psql=${1#"$root"}
keep=""
# add PATH (absolute in the image): keep it, and what its symlinks lead to.
add() {
  p=$1
  while :; do
    case "$keep" in *"
$p
"*) return 0 ;; esac
    keep="$keep
$p
"
    [ -L "$root$p" ] || break
    t=$(readlink "$root$p")
    case "$t" in /*) p=$t ;; *) p=$(dirname "$p")/$t ;; esac
  done
  [ -f "$root$p" ] || { echo "extract.sh: $p is missing" >&2; exit 1; }
}
# lib SONAME: the image path of SONAME, in the dirs ld.so searches by default.
lib() {
  for d in "$root"/lib/*-linux-gnu* "$root"/usr/lib/*-linux-gnu* "$root/lib" "$root/usr/lib"; do
    if [ -e "$d/$1" ]; then
      echo "${d#"$root"}/$1"
      return 0
    fi
  done
  echo "extract.sh: no $1 in the image (needed by psql)" >&2
  exit 1
}
todo=$psql
interp=$(readelf -l "$root$psql" | sed -n 's/.*Requesting program interpreter: \(.*\)]$/\1/p')
[ -n "$interp" ] || { echo "extract.sh: $psql has no ELF interpreter" >&2; exit 1; }
add "$interp"
while [ -n "$todo" ]; do
  # shellcheck disable=SC2086 # a list of paths without blanks
  set -- $todo
  f=$1
  shift
  todo=$*
  case "$keep" in *"
$f
"*) continue ;; esac
  add "$f"
  for so in $(readelf -d "$root$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
    todo="$todo $(lib "$so")"
  done
done
# Drop every other file the packages put in these trees (usr/share and var go in the
# packer, --exclude in images.sh; mmdebstrap's cleanup still needs etc/apt and etc/dpkg,
# and it made fstab, hostname and resolv.conf, which the packer drops too).
for tree in bin sbin lib lib64 usr/bin usr/sbin usr/lib usr/libexec usr/games etc; do
  [ -d "$root/$tree" ] || continue
  find "$root/$tree" -xdev ! -type d | while IFS= read -r f; do
    p=${f#"$root"}
    case "$p" in
      /bin/busybox | /etc/apt/* | /etc/dpkg/* | /etc/fstab | /etc/hostname | /etc/resolv.conf) continue ;;
    esac
    case "$keep" in *"
$p
"*) continue ;; esac
    rm -f "$f"
  done
  find "$root/$tree" -xdev -depth -type d -empty -delete
done
# `psql` on PATH, instead of Debian's pg_wrapper link.
mkdir -p "$root/usr/bin"
ln -sf "..${psql#/usr}" "$root/usr/bin/psql"

# busybox applets as links in /bin (sh, nc, hostname, ...). The binary is static, so the
# host can run it to list them.
for applet in $("$root/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
mkdir -p "$root/usr/local/bin"
install -m 0755 "$here/hello" "$here/hello-request" "$root/usr/local/bin/"
# Names for the ids (the image runs as 65532), for `id` and `ls -l` in a debug shell, and
# for libpq, which looks up the user's home directory (for ~/.pgpass, never needed here).
printf 'root:x:0:0:root:/root:/bin/sh\nhello:x:65532:65532:hello:/nonexistent:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nhello:x:65532:\nnogroup:x:65534:\n' >"$root/etc/group"
# /etc/hosts before DNS, as Debian (glibc's default without this file asks DNS first).
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
# What else extract leaves (apt and dpkg scaffolding, docs) is dropped by the packer
# (--exclude in images.sh): mmdebstrap's cleanup still needs it after this hook.
