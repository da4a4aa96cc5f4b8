#!/bin/sh
# mmdebstrap customize hook for postgres: make Debian's postgresql-15 behave like the
# official image (https://github.com/docker-library/postgres): no cluster in the image, the
# entrypoint runs initdb into $PGDATA on first start.
set -eu
root=$1
here=$(dirname "$0")
# The tag (15) must say what is inside.
chroot "$root" /usr/lib/postgresql/15/bin/postgres --version | grep -q ' 15\.'
# Debian's postinst created the cluster "15 main"; nothing uses it.
rm -rf "$root/var/lib/postgresql/15" "$root/etc/postgresql/15"
sed -ri 's/^#?(create_main_cluster)\s*=.*/\1 = false/' "$root/etc/postgresql-common/createcluster.conf"
# initdb copies this sample into postgresql.conf: listen on every interface, as official.
sample=$root/usr/share/postgresql/15/postgresql.conf.sample
sed -ri "s/^#?(listen_addresses)\s*=\s*\S+/\1 = '*'/" "$sample"
grep -q "^listen_addresses = '\*'" "$sample"
# The unix socket directory (Debian's compiled-in default); writable by any uid, like
# official, since pods may run as another uid.
install -d -o 999 -g 999 -m 3777 "$root/run/postgresql"
# The volume's mount point, for runs without a volume.
install -d -o 999 -g 999 -m 0777 "$root/var/lib/postgresql/data"
# ssl-cert's postinst made a "snakeoil" key pair; every copy of the image would share it.
rm -f "$root/etc/ssl/private/ssl-cert-snakeoil.key" "$root/etc/ssl/certs/ssl-cert-snakeoil.pem"
mkdir -p "$root/docker-entrypoint-initdb.d"
install -m 0755 "$here/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
