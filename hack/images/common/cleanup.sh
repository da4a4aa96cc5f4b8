#!/bin/sh
# mmdebstrap customize hook, run before the image's own: drop what the build left behind
# that no image should carry. mmdebstrap's own /run cleanup is skipped (--skip=cleanup/run)
# because it runs after the hooks and would delete the directories the image hooks create
# there (e.g. /run/postgresql); this does the same job earlier.
set -eu
root=$1
# The build host's name and resolver: the runtime provides its own.
rm -f "$root/etc/hostname" "$root/etc/resolv.conf"
# Runtime state of the build (keep /run/lock: /var/lock points to it).
find "$root/run" -mindepth 1 -maxdepth 1 ! -name lock -exec rm -rf {} +
# Backups dpkg and debconf keep of their databases.
rm -f "$root"/var/lib/dpkg/*-old "$root"/var/cache/debconf/*-old
