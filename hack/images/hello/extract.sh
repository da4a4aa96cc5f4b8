#!/bin/sh
# mmdebstrap extract hook for hello (--variant=extract --include=busybox-static): turn the
# unpacked package into the image, with no package manager and nothing else from Debian.
set -eu
root=$1
here=$(dirname "$0")
# busybox applets as links in /bin (sh, nc, hostname, ...). The binary is static, so the
# host can run it to list them.
for applet in $("$root/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
mkdir -p "$root/usr/local/bin"
install -m 0755 "$here/hello" "$here/hello-request" "$root/usr/local/bin/"
# Names for the ids (the image runs as 65532), for `id` and `ls -l` in a debug shell.
printf 'root:x:0:0:root:/root:/bin/sh\nhello:x:65532:65532:hello:/nonexistent:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nhello:x:65532:\nnogroup:x:65534:\n' >"$root/etc/group"
# What else extract leaves (apt and dpkg scaffolding, docs) is dropped by the packer
# (--exclude in images.sh): mmdebstrap's cleanup still needs it after this hook.
