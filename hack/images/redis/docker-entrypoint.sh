#!/bin/sh
# Entrypoint of localhost/slipway-dev/redis:7, with the official image's contract
# (https://github.com/docker-library/redis, docker-entrypoint.sh): arguments that start
# with `-` (or a *.conf file) are redis-server's, e.g. Slipway's
# `--requirepass $(REDIS_PASSWORD) --appendonly yes --dir /data`; started as root it
# chowns the working directory (/data) and drops to redis (999).
set -eu

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi

if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  find . \! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

# The official binary is built without protected mode (the container's network is the
# boundary); Debian's has it on, which refuses clients from other hosts when no password
# is set. Turn it off unless a config file comes first (it then decides).
if [ "$1" = redis-server ] && { [ $# -eq 1 ] || [ "${2#-}" != "$2" ]; }; then
  shift
  set -- redis-server --protected-mode no "$@"
fi

# As official: files the server creates are private unless a umask was chosen.
if [ "$(umask)" = 0022 ]; then
  umask 0077
fi

exec "$@"
