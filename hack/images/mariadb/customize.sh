#!/bin/sh
# mmdebstrap customize hook for mariadb: make Debian's mariadb-server behave like the
# official image (https://github.com/MariaDB/mariadb-docker): empty datadir in the image,
# the entrypoint initializes it on first start; listen on every interface.
set -eu
root=$1
here=$(dirname "$0")
# The tag (10.11) must say what is inside.
chroot "$root" mariadbd --version | grep -q ' 10\.11\.'
# Debian's postinst ran mariadb-install-db into /var/lib/mysql; the volume goes there.
rm -rf "$root/var/lib/mysql"
install -d -o 999 -g 999 -m 0755 "$root/var/lib/mysql"
# Socket and pid file directory (the server's config names /run/mysqld); 1777 as official,
# so the server can run as another uid.
install -d -o 999 -g 999 -m 1777 "$root/run/mysqld"
# As official: no bind-address (all interfaces), no host name lookups.
sed -i -e 's/^bind-address/#&/' "$root/etc/mysql/mariadb.conf.d/50-server.cnf"
if grep -rq '^bind-address' "$root/etc/mysql/"; then
  echo "mariadb/customize.sh: a bind-address is left in /etc/mysql" >&2
  exit 1
fi
printf '[mariadb]\nhost-cache-size=0\nskip-name-resolve\n' >"$root/etc/mysql/mariadb.conf.d/05-skipcache.cnf"
mkdir -p "$root/docker-entrypoint-initdb.d"
install -m 0755 "$here/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
