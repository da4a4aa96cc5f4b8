#!/bin/sh
# mmdebstrap customize hook for redis: the official image's layout
# (https://github.com/docker-library/redis): data in /data, owned by redis (999).
set -eu
root=$1
here=$(dirname "$0")
# The tag (7) must say what is inside.
chroot "$root" redis-server --version | grep -q ' v=7\.'
install -d -o 999 -g 999 -m 0755 "$root/data"
install -m 0755 "$here/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
