#!/bin/sh
# Keeps the host key on the home volume, so it survives restarts and clients do not see
# "REMOTE HOST IDENTIFICATION HAS CHANGED" after a rollout.
set -eu
mkdir -p "$HOME/.ssh/host"
chmod 700 "$HOME/.ssh" "$HOME/.ssh/host"
[ -f "$HOME/.ssh/host/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$HOME/.ssh/host/ssh_host_ed25519_key"
# The kubelet makes every file on a volume with an fsGroup group-readable and -writable when
# it mounts it (0660), and sshd ignores a host key others can read, then exits.
chmod 600 "$HOME/.ssh/host/ssh_host_ed25519_key"
exec /usr/sbin/sshd -D -e -f /etc/slipway/sshd_config
