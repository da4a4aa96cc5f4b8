#!/usr/bin/env bash
# Build the container images a local node runs, offline from Debian's packages (no
# registry, no Docker engine), as OCI image archives that `ctr images import` stores under
# their full name, so the kubelet finds them with imagePullPolicy: IfNotPresent.
#
#   hack/images.sh build [NAME...]   build the images that are not cached yet (default: all)
#   hack/images.sh list              print "REF PATH" per image (builds nothing; PATH may
#                                    not exist yet)
#   hack/images.sh import SOCKET [NAME...]
#                                    build what is missing, then import these images
#                                    (default: all but slipway) into the containerd at SOCKET
#                                    (namespace k8s.io), skipping those it already holds with
#                                    the same digest
#
#   NAME       REF
#   pause      localhost/slipway-dev/pause:3.10       pod sandbox (hack/images/pause.c)
#   coredns    localhost/slipway-dev/coredns:1.14.7   cluster DNS: hack/tools.sh's coredns
#   local-path-provisioner  localhost/slipway-dev/local-path-provisioner:0.0.30
#                                                     PVC provisioner of the real node:
#                                                     hack/tools.sh's local-path-provisioner
#   traefik    localhost/slipway-dev/traefik:3.6.12   ingress controller of the real node:
#                                                     hack/tools.sh's traefik
#   metrics-server  localhost/slipway-dev/metrics-server:0.8.0
#                                                     pod metrics for HPAs on the real node:
#                                                     hack/tools.sh's metrics-server
#   debian     localhost/slipway-dev/debian:bookworm  minimal Debian (mmdebstrap minbase)
#   hello      localhost/slipway-dev/hello:latest     test App on 8080: "hello from <pod>", /visits,
#                                                     /burn?ms=N (keeps a CPU busy)
#   postgres   localhost/slipway-dev/postgres:15      official images' entrypoint contract,
#   mariadb    localhost/slipway-dev/mariadb:10.11    uid/gid 999, Debian's packages
#   redis      localhost/slipway-dev/redis:7
#   workspace  localhost/slipway-dev/workspace:0.1    controller/workspace-image on Debian
#   slipway    localhost/slipway-dev/slipway:dev      Slipway itself (charts/slipway): the
#                                                     release binary (cargo build --release) on
#                                                     Debian's libc; not part of the default
#                                                     set, which the node needs to start
#
# Archives live in $SLIPWAY_CACHE/images/<name>-<hash>.tar. <hash> covers every input:
# the mmdebstrap and packer command lines (suite, mirrors, packages, hooks, image config)
# and the files they read (hack/images/..., controller/workspace-image/...), so changing
# any of them builds a new archive. Packages are what the mirror serves at build time:
# delete an archive to rebuild it with newer ones. For `import` into a containerd whose
# snapshotter is not overlayfs, set CONTAINERD_SNAPSHOTTER (read by ctr).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO="$(cd "$HACK_DIR/.." && pwd)"
IMAGES_DIR="$HACK_DIR/images"
CACHE_DIR="$SLIPWAY_CACHE/images"
WORKSPACE_DIR="$REPO/controller/workspace-image"

# The node's images, which `import` takes by default, and Slipway's own.
ALL_IMAGES=(pause coredns local-path-provisioner traefik metrics-server debian hello postgres mariadb redis workspace)
KNOWN_IMAGES=("${ALL_IMAGES[@]}" slipway)

SUITE=bookworm
MIRROR="${SLIPWAY_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${SLIPWAY_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
# The release plus its point-release updates and security fixes, as Debian's own images.
SOURCES=(
  "deb $MIRROR $SUITE main"
  "deb $MIRROR $SUITE-updates main"
  "deb $SECURITY_MIRROR $SUITE-security main"
)
# Fixed timestamps (file mtimes, image creation date): the same inputs and packages give
# the same image digest whenever they are built.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1704067200}" # 2024-01-01

MERGED_USR_HOOKS=/usr/share/mmdebstrap/hooks/merged-usr

BASE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Keep images small: no documentation, man pages or translations (copyright files stay).
# mmdebstrap also stores these in the image's dpkg config, so a later `apt-get install`
# in a derived image skips them too, as in Debian's slim images.
DPKG_OPTS=(
  'path-exclude=/usr/share/doc/*'
  'path-include=/usr/share/doc/*/copyright'
  'path-exclude=/usr/share/man/*'
  'path-exclude=/usr/share/info/*'
  'path-exclude=/usr/share/locale/*'
  'path-include=/usr/share/locale/locale.alias'
  'path-exclude=/usr/share/lintian/*'
)

# hook SCRIPT ARGS...: an mmdebstrap hook command that runs SCRIPT with the rootfs ("$1"
# in mmdebstrap's sh) and ARGS.
hook() {
  local cmd
  cmd="$(printf '%q' "$1") \"\$1\""
  shift
  local a
  for a in "$@"; do cmd+=" $(printf '%q' "$a")"; done
  printf '%s' "$cmd"
}

# debian_rootfs [PACKAGE...]: mmdebstrap options for a Debian image with these packages
# on top of minbase (Essential + Priority: required + apt), the set debian:*-slim has.
debian_rootfs() {
  MM=(
    --variant=minbase
    # merged /usr the way Debian's images have it (bin -> usr/bin, ...); without it apt
    # satisfies init-system-helpers' "usrmerge | usr-is-merged" with usrmerge, which
    # drags perl into every image. mmdebstrap's hooks, minus their apt chatter on stdout.
    --setup-hook="$(hook "$MERGED_USR_HOOKS/setup00.sh") >/dev/null"
    --essential-hook="$(hook "$MERGED_USR_HOOKS/essential00.sh") >/dev/null"
    --aptopt='Acquire::Languages "none"'
    --skip=cleanup/run # done by common/cleanup.sh, before the image hooks fill /run
    --customize-hook="$(hook "$IMAGES_DIR/common/cleanup.sh")"
  )
  local o
  for o in "${DPKG_OPTS[@]}"; do MM+=(--dpkgopt="$o"); done
  (($# == 0)) || MM+=(--include="$*")
  INPUTS+=("$IMAGES_DIR/common/cleanup.sh")
}

# engine_user NAME HOME SHELL: create NAME with uid/gid 999 before the packages do.
engine_user() {
  MM+=(--essential-hook="$(hook "$IMAGES_DIR/common/add-user.sh" "$1" 999 "$2" "$3")")
  INPUTS+=("$IMAGES_DIR/common/add-user.sh")
}

# customize NAME [ARGS...]: run hack/images/NAME/customize.sh after the packages.
customize() {
  MM+=(--customize-hook="$(hook "$IMAGES_DIR/$1/customize.sh" "${@:2}")")
  INPUTS+=("$IMAGES_DIR/$1"/*)
}

# workspace_packages: the packages controller/workspace-image/Dockerfile installs, so
# the local image follows the product's when it changes.
workspace_packages() {
  local pkgs
  pkgs="$(sed -n 's/.*apt-get install -y --no-install-recommends \(.*\) \\$/\1/p' "$WORKSPACE_DIR/Dockerfile")"
  [[ -n "$pkgs" ]] || die "cannot find the apt-get install line in $WORKSPACE_DIR/Dockerfile"
  echo "$pkgs"
}

# pinned_version TOOL: the version hack/tools.sh pins for TOOL (e.g. v1.14.7), without
# building it.
pinned_version() {
  local v
  v="$("$HACK_DIR/tools.sh" list | awk -v t="$1" '$1 == t { print $2; exit }')"
  [[ -n "$v" ]] || die "hack/tools.sh has no $1 tool"
  echo "$v"
}

# go_binary_image TOOL PATH VERSION_ARG VERSION_LINE: define an image that holds only the
# binary hack/tools.sh builds from TOOL's pinned module, at PATH, run as the distroless
# nonroot user. Its version and pins are the inputs; the tag is its version without the
# "v". VERSION_LINE is a regex ({V} stands for the tag) that a line of `BINARY VERSION_ARG`
# must match, so the tag says what is inside.
go_binary_image() {
  local v
  v="$(pinned_version "$1")"
  REF=localhost/slipway-dev/$1:${v#v}
  GO_TOOL="$1" GO_BINARY_PATH="$2" GO_VERSION_ARG="$3" GO_VERSION_LINE="${4//\{V\}/${v#v}}"
  INPUTS+=("$HACK_DIR/tools/$1/go.mod" "$HACK_DIR/tools/$1/go.sum")
  OCI=(--entrypoint "[\"$2\"]" --user 65532:65532 --env "PATH=$BASE_PATH" --workdir /)
}

# define NAME: set REF, MM (mmdebstrap options; empty for pause), OCI (packer options)
# and INPUTS (the files the build reads) for image NAME.
define() {
  REF="" MM=() OCI=() INPUTS=("$IMAGES_DIR/oci.py") GO_TOOL="" SLIPWAY_BINARY=""
  case "$1" in
    pause)
      REF=localhost/slipway-dev/pause:3.10
      INPUTS+=("$IMAGES_DIR/pause.c")
      OCI=(--entrypoint '["/pause"]' --user 65535:65535 --env "PATH=$BASE_PATH" --workdir /)
      ;;
    coredns)
      # As upstream's image: nothing but the binary, as the distroless nonroot user.
      go_binary_image coredns /coredns -version 'CoreDNS-{V}'
      OCI+=(--port 53/tcp --port 53/udp)
      ;;
    local-path-provisioner)
      # The PVC provisioner (hack/node/local-path-storage.yaml). Upstream's image is alpine,
      # but only for its helper pods' shell: ours run the debian image. The binary sits
      # where upstream's does (/usr/bin, on PATH), so upstream's `command:
      # [local-path-provisioner, ...]` works. It only talks to the API server, so it runs as
      # the distroless nonroot user rather than upstream's root. hack/tools.sh stamps
      # main.VERSION.
      go_binary_image local-path-provisioner /usr/bin/local-path-provisioner --version \
        'local-path-provisioner version v{V}'
      ;;
    traefik)
      # The ingress controller (hack/node/traefik.yaml). Upstream's image is alpine, for
      # nothing Traefik needs: it serves on unprivileged ports, so it runs as the distroless
      # nonroot user. hack/tools.sh stamps pkg/version.Version.
      go_binary_image traefik /usr/local/bin/traefik version 'Version: *v{V}'
      OCI+=(--port 8000/tcp)
      ;;
    metrics-server)
      # Resource metrics for HorizontalPodAutoscalers (hack/node/metrics-server.yaml): as
      # upstream's image, nothing but the binary. hack/tools.sh stamps client-go's version.
      go_binary_image metrics-server /metrics-server --version 'v{V}'
      OCI+=(--port 10250/tcp)
      ;;
    debian)
      REF=localhost/slipway-dev/debian:$SUITE
      debian_rootfs
      OCI=(--cmd '["bash"]' --env "PATH=$BASE_PATH")
      ;;
    hello)
      REF=localhost/slipway-dev/hello:latest
      # Nothing but busybox, and psql for GET /visits: the extract variant unpacks the
      # packages (and their dependencies) and installs nothing; the hook keeps busybox, psql
      # and the libraries psql loads, none of the rest (perl, dpkg, the other client tools).
      MM=(--variant=extract --include=busybox-static --include=postgresql-client-15
        --extract-hook="$(hook "$IMAGES_DIR/hello/extract.sh")")
      INPUTS+=("$IMAGES_DIR/hello"/*)
      OCI=(--entrypoint '["/usr/local/bin/hello"]' --user 65532:65532
        --env PATH=/usr/local/bin:/usr/bin:/bin --workdir / --port 8080/tcp
        # apt/dpkg scaffolding and the package's docs, which extract leaves behind.
        --exclude 'etc/apt*' --exclude 'etc/dpkg*' --exclude etc/fstab --exclude etc/hostname
        --exclude etc/resolv.conf --exclude 'usr/share*' --exclude 'var*')
      ;;
    postgres)
      REF=localhost/slipway-dev/postgres:15
      debian_rootfs postgresql-15
      engine_user postgres /var/lib/postgresql /bin/bash
      customize postgres
      OCI=(--entrypoint '["docker-entrypoint.sh"]' --cmd '["postgres"]' --user 999:999
        --env "PATH=/usr/lib/postgresql/15/bin:$BASE_PATH" --env PGDATA=/var/lib/postgresql/data
        --env LANG=C.UTF-8 --env PG_MAJOR=15
        --port 5432/tcp --volume /var/lib/postgresql/data
        --stop-signal SIGINT) # fast shutdown, as official
      ;;
    mariadb)
      REF=localhost/slipway-dev/mariadb:10.11
      debian_rootfs mariadb-server
      engine_user mysql /var/lib/mysql /usr/sbin/nologin
      customize mariadb
      OCI=(--entrypoint '["docker-entrypoint.sh"]' --cmd '["mariadbd"]' --user 999:999
        --env "PATH=$BASE_PATH" --env LANG=C.UTF-8
        --port 3306/tcp --volume /var/lib/mysql)
      ;;
    redis)
      REF=localhost/slipway-dev/redis:7
      debian_rootfs redis-server
      engine_user redis /var/lib/redis /usr/sbin/nologin
      customize redis
      OCI=(--entrypoint '["docker-entrypoint.sh"]' --cmd '["redis-server"]' --user 999:999
        --env "PATH=$BASE_PATH" --workdir /data --port 6379/tcp --volume /data)
      ;;
    workspace)
      REF=localhost/slipway-dev/workspace:0.1
      local pkgs
      pkgs="$(workspace_packages)"
      # shellcheck disable=SC2086 # a list of package names
      debian_rootfs $pkgs
      customize workspace "$WORKSPACE_DIR"
      INPUTS+=("$WORKSPACE_DIR/Dockerfile" "$WORKSPACE_DIR/sshd_config" "$WORKSPACE_DIR/entrypoint.sh")
      OCI=(--entrypoint '["/usr/local/bin/slipway-workspace"]' --user 1000:1000
        --env "PATH=$BASE_PATH" --port 2222/tcp)
      ;;
    slipway)
      # What the Dockerfile at the repository's root builds for production, from this
      # machine's release build instead of a builder image: the binary and the C runtime it
      # links (libc6, libgcc-s1, as Debian's distroless/cc), unpacked (extract: no package
      # manager, no shell), run as the distroless nonroot user. The binary is an input, so a
      # new build makes a new archive; `import` replaces the :dev tag.
      REF=localhost/slipway-dev/slipway:dev
      MM=(--variant=extract --include=libc6 --include=libgcc-s1)
      SLIPWAY_BINARY="$REPO/target/release/slipway"
      INPUTS+=("$SLIPWAY_BINARY")
      OCI=(--entrypoint '["/usr/local/bin/slipway"]' --user 65532:65532 --env "PATH=$BASE_PATH"
        --workdir / --port 8080/tcp --port 8081/tcp --port 8443/tcp
        --exclude 'etc/apt*' --exclude 'etc/dpkg*' --exclude etc/fstab --exclude etc/hostname
        --exclude etc/resolv.conf --exclude 'usr/share/doc*' --exclude 'usr/share/lintian*'
        --exclude 'var*' --add "$SLIPWAY_BINARY:/usr/local/bin/slipway:0755")
      ;;
    *) die "unknown image '$1' (known: ${KNOWN_IMAGES[*]})" ;;
  esac
}

ARCH=""
arch() {
  [[ -n "$ARCH" ]] || ARCH="$(dpkg --print-architecture)"
  echo "$ARCH"
}

# image_path NAME: the archive of the current inputs of NAME (after `define NAME`).
image_path() {
  local hash
  hash="$(
    {
      printf '%s\n' "$1" "$REF" "$(arch)" "$SOURCE_DATE_EPOCH" "$SUITE" "${SOURCES[@]}"
      # Paths relative to the repo, so the hash does not depend on where it is checked out.
      printf 'mmdebstrap %s\n' "${MM[@]//"$REPO"\//}"
      printf 'oci %s\n' "${OCI[@]//"$REPO"\//}"
      (cd "$REPO" && sha256sum "${INPUTS[@]#"$REPO"/}")
    } | sha256sum
  )"
  echo "$CACHE_DIR/$1-${hash:0:16}.tar"
}

# archive_digest PATH: the manifest digest an archive's index.json names.
archive_digest() {
  tar --occurrence=1 -xOf "$1" index.json | sed -n 's/.*"digest":"\(sha256:[0-9a-f]\{64\}\)".*/\1/p'
}

BUILD_TMP=""
BUILD_NAME=""
cleanup_build() {
  local rc=$?
  if [[ -n "$BUILD_TMP" ]]; then
    # --one-file-system: never follow a mount mmdebstrap might have left in a rootfs.
    rm -rf --one-file-system "$BUILD_TMP"
    ((rc == 0)) || warn "building $BUILD_NAME failed; nothing was cached"
  fi
}
trap cleanup_build EXIT

# build NAME: build the archive of image NAME unless it is cached.
build() {
  local name="$1" path
  if [[ "$name" == slipway ]]; then
    # cargo decides whether the binary is current; the archive's hash then covers it. Without
    # the SOURCE_DATE_EPOCH the images' layers use: build scripts (cc's) watch it, so a build
    # with it and one without (loadtest/run.sh's, a developer's) rebuilt each other's binary.
    log "cargo build --release --bin slipway"
    (cd "$REPO" && env -u SOURCE_DATE_EPOCH cargo build --release --locked --bin slipway) >&2
  fi
  define "$name"
  path="$(image_path "$name")"
  if [[ -f "$path" ]]; then
    log "$name ($REF) is cached in $path"
    return 0
  fi
  mkdir -p "$CACHE_DIR"
  # Serialize concurrent builds of the same image (e.g. two imports at once).
  exec {lockfd}>"$CACHE_DIR/.$name.lock"
  flock "$lockfd"
  if [[ -f "$path" ]]; then
    exec {lockfd}>&-
    return 0
  fi

  log "building $name ($REF)"
  local start=$SECONDS
  BUILD_NAME="$name"
  BUILD_TMP="$(mktemp -d "$CACHE_DIR/.$name.tmp.XXXXXX")"
  local -a oci=(python3 "$IMAGES_DIR/oci.py" --ref "$REF" --out "$BUILD_TMP/image.tar" --arch "$(arch)"
    --created-by "hack/images.sh build $name" "${OCI[@]}")
  if [[ "$name" == pause ]]; then
    need_cmd gcc gcc
    gcc -static -Os -s -Wall -Wextra -Werror -o "$BUILD_TMP/pause" "$IMAGES_DIR/pause.c"
    "${oci[@]}" --add "$BUILD_TMP/pause:/pause:0755" >/dev/null
  elif [[ -n "$GO_TOOL" ]]; then
    local bin version
    bin="$(tool_path "$GO_TOOL")" # builds it if hack/tools.sh has not yet
    version="$("$bin" "$GO_VERSION_ARG")"
    grep -qx "$GO_VERSION_LINE" <<<"$version" || die "$bin is not $REF: $version"
    "${oci[@]}" --add "$bin:$GO_BINARY_PATH:0755" >/dev/null
  else
    need_cmd mmdebstrap mmdebstrap
    [[ -d "$MERGED_USR_HOOKS" ]] || die "$MERGED_USR_HOOKS is missing: mmdebstrap >= 1.3 needed"
    # Hooks talk on stdout; this command's stdout is not for progress.
    mmdebstrap "${MM[@]}" "$SUITE" "$BUILD_TMP/rootfs.tar" "${SOURCES[@]}" >&2
    log "packing $name"
    "${oci[@]}" --rootfs "$BUILD_TMP/rootfs.tar" >/dev/null
  fi
  # Publish atomically so an interrupted build never looks cached.
  mv "$BUILD_TMP/image.tar" "$path"
  rm -rf "$BUILD_TMP"
  BUILD_TMP=""
  exec {lockfd}>&-
  log "built $name in $((SECONDS - start))s -> $path ($(du -h "$path" | cut -f1))"
}

cmd_build() {
  local start=$SECONDS name
  (($# > 0)) || set -- "${ALL_IMAGES[@]}"
  for name in "$@"; do
    build "$name"
  done
  log "images ready in $((SECONDS - start))s"
}

cmd_list() {
  local name
  for name in "${KNOWN_IMAGES[@]}"; do
    define "$name"
    if [[ -n "$SLIPWAY_BINARY" && ! -f "$SLIPWAY_BINARY" ]]; then
      echo "$REF (not built: no $SLIPWAY_BINARY)"
      continue
    fi
    echo "$REF $(image_path "$name")"
  done
}

cmd_import() {
  (($# >= 1)) || die "usage: $0 import SOCKET [NAME...]"
  local sock="$1"
  shift
  (($# > 0)) || set -- "${ALL_IMAGES[@]}"
  [[ -S "$sock" ]] || die "$sock is not a socket (is containerd running?)"
  need_cmd ctr containerd
  cmd_build "$@"
  local -a ctr=(ctr --address "$sock" --namespace k8s.io)
  # REF -> manifest digest of what containerd holds now.
  local -A have=()
  local listing ref digest _
  listing="$("${ctr[@]}" images ls)"
  while read -r ref _ digest _; do
    have["$ref"]="$digest"
  done <<<"$listing"
  local name path want
  for name in "$@"; do
    define "$name"
    path="$(image_path "$name")"
    want="$(archive_digest "$path")"
    [[ -n "$want" ]] || die "$path has no manifest digest in its index.json"
    if [[ "${have[$REF]:-}" == "$want" ]]; then
      log "$REF is already in containerd ($want)"
      continue
    fi
    log "importing $REF from $path"
    "${ctr[@]}" images import "$path" >&2
    # ctr names the image from the archive's annotations; make sure it did.
    digest="$("${ctr[@]}" images ls "name==$REF" | awk 'NR == 2 { print $3 }')"
    [[ "$digest" == "$want" ]] || die "after importing $path, containerd has $REF as '${digest}', not $want"
  done
}

case "${1:-build}" in
  build) shift || true; cmd_build "$@" ;;
  list) cmd_list ;;
  import) shift; cmd_import "$@" ;;
  -h|--help|help) sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (use: build [NAME...] | list | import SOCKET)" ;;
esac
