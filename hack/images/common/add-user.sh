#!/bin/sh
# mmdebstrap essential hook: ROOTFS NAME ID HOME SHELL
#
# Creates the user and group NAME with uid = gid = ID before the image's packages are
# installed, so their postinst (`adduser --system NAME`) finds it instead of taking the
# next free system id: the official images run their engines as 999, and Slipway's pods
# run as that id. useradd (package passwd) is not installed yet at this stage, so append
# to the files base-passwd created; passwd's postinst adds the shadow entries.
set -eu
root=$1 name=$2 id=$3 home=$4 shell=$5
if grep -q "^$name:" "$root/etc/passwd" || cut -d: -f3 "$root/etc/passwd" | grep -qx "$id"; then
  echo "add-user.sh: user $name or uid $id already exists" >&2
  exit 1
fi
printf '%s:x:%s:%s::%s:%s\n' "$name" "$id" "$id" "$home" "$shell" >>"$root/etc/passwd"
printf '%s:x:%s:\n' "$name" "$id" >>"$root/etc/group"
