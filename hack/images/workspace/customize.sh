#!/bin/sh
# mmdebstrap customize hook for workspace: ROOTFS WORKSPACE_IMAGE_DIR
#
# Does what the RUN and COPY lines of controller/workspace-image/Dockerfile do after its
# `apt-get install` (the packages come from the same Dockerfile, see images.sh), with that
# directory's sshd_config and entrypoint.sh.
set -eu
root=$1 src=$2
chroot "$root" groupadd --gid 1000 dev
chroot "$root" useradd --uid 1000 --gid 1000 --home-dir /home/dev --shell /bin/bash dev
chroot "$root" passwd -d dev >/dev/null
chroot "$root" usermod -p '*' dev
mkdir -p "$root/etc/slipway/ssh" "$root/run/sshd"
install -m 0644 "$src/sshd_config" "$root/etc/slipway/sshd_config"
install -m 0755 "$src/entrypoint.sh" "$root/usr/local/bin/slipway-workspace"
# openssh-server's postinst generated host keys; sshd_config uses the one in the home
# volume instead, and every copy of the image would share these private keys.
rm -f "$root"/etc/ssh/ssh_host_*
