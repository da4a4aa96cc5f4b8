#!/usr/bin/env bash
# Runs Slipway on this machine, as the README gives it:
#
#   hack/up.sh
#
# Builds what is missing, starts (or reuses) a local control plane with the machine's real
# node (kubelet + containerd + CoreDNS, images built offline: hack/node.sh, hack/images.sh)
# and a MailHog mail catcher named `dev`, then runs `slipway all` (API + controllers, CRDs
# installed) in the foreground with a SQLite database. What you create really runs: the
# App's URL answers, the Database accepts its credentials, the Workspace lets you in over
# ssh. Ctrl-C stops Slipway; the cluster and mail catcher keep running (stop them with
# `hack/cluster.sh down dev; hack/mail.sh down dev`; the real node is one per machine, so
# stop the dev cluster before hack/test.sh).
#
# Settings (all optional): SLIPWAY_LISTEN (default 127.0.0.1:8080), and any flag of
# `slipway all --help` through its environment variable.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

name=dev
hack/tools.sh
# The cluster's env brings Slipway's settings for it: node address, plan catalogue and the
# local images (see hack/cluster.sh).
eval "$(hack/cluster.sh up "$name" --real-node)"
eval "$(hack/mail.sh up "$name")"

state="$SLIPWAY_STATE/slipway/$name"
mkdir -p "$state"
# A key kept on disk, so access tokens survive a restart of the dev server.
[[ -s "$state/jwt-secret" ]] || (umask 077 && openssl rand -hex 32 >"$state/jwt-secret")
SLIPWAY_JWT_SECRET="$(cat "$state/jwt-secret")"
export SLIPWAY_JWT_SECRET
export DATABASE_URL="${DATABASE_URL:-sqlite://$state/slipway.db?mode=rwc}"
export SLIPWAY_LISTEN="${SLIPWAY_LISTEN:-127.0.0.1:8080}"
export SLIPWAY_PUBLIC_URL="${SLIPWAY_PUBLIC_URL:-http://$SLIPWAY_LISTEN}"
# The example account below is the dev platform's admin, so it can grant itself plans.
export SLIPWAY_ADMIN_EMAILS="${SLIPWAY_ADMIN_EMAILS:-you@example.com}"

log "building slipway"
cargo build --bin slipway

api="http://$SLIPWAY_LISTEN/api/v1"
json='content-type: application/json'
cat >&2 <<TRY

Slipway is starting on http://$SLIPWAY_LISTEN (database $DATABASE_URL).
Mail catcher (owner emails): $SLIPWAY_MAIL_API/
Cluster: export KUBECONFIG=$KUBECONFIG

Try it from another terminal:

  API=$api
  curl -s -XPOST \$API/auth/register -H '$json' -d '{"email":"you@example.com","password":"correct horse battery","name":"You"}'
  TOKEN=\$(curl -s -XPOST \$API/auth/login -H '$json' -d '{"email":"you@example.com","password":"correct horse battery"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  # Confirm the address with the token of the link mailed to it (read in the catcher's web UI, $SLIPWAY_MAIL_API/):
  curl -s -XPOST \$API/auth/verify -H "authorization: Bearer \$TOKEN" -H '$json' -d '{"token":"<token from the link>"}'
  # Accounts choose only self-service plans (free); you@example.com, a platform admin here, grants itself more:
  ID=\$(curl -s \$API/me -H "authorization: Bearer \$TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  curl -s -XPUT \$API/admin/users/\$ID/entitlements -H "authorization: Bearer \$TOKEN" -H '$json' -d '{"max_tenants":3,"plans":["standard","pro"]}'
  curl -s -XPOST \$API/tenants -H "authorization: Bearer \$TOKEN" -H '$json' -d '{"name":"demo","plan":"standard"}'
  curl -s -XPOST \$API/tenants/demo/apps -H "authorization: Bearer \$TOKEN" -H '$json' \\
       -d '{"name":"web","spec":{"image":"localhost/slipway-dev/hello:latest","port":8080,"replicas":2,"expose":{"type":"NodePort"}}}'
  curl -s \$API/tenants/demo/apps/web -H "authorization: Bearer \$TOKEN"     # status.phase Ready, status.url
  curl http://$SLIPWAY_NODE_ADDRESS:<nodePort>/                                  # "hello from web-..."
  curl -s -XPOST \$API/tenants/demo/apps -H "authorization: Bearer \$TOKEN" -H '$json' \\
       -d '{"name":"shop","spec":{"image":"localhost/slipway-dev/hello:latest","port":8080,"expose":{"type":"Ingress","host":"shop.demo.apps.slipway.localhost"}}}'
  curl -H 'Host: shop.demo.apps.slipway.localhost' http://$SLIPWAY_CLUSTER_INGRESS/   # through Traefik
  curl -s -XPOST \$API/tenants/demo/databases -H "authorization: Bearer \$TOKEN" -H '$json' \\
       -d '{"name":"orders","spec":{"engine":"postgres","version":"15","storage":"1Gi","expose":{"type":"NodePort"}}}'
  curl -s \$API/tenants/demo/databases/orders -H "authorization: Bearer \$TOKEN"  # status.nodePort
  curl -s \$API/tenants/demo/databases/orders/credentials -H "authorization: Bearer \$TOKEN"
  psql "postgresql://app:<password>@$SLIPWAY_NODE_ADDRESS:<nodePort>/app"
  # (Redis: {"engine":"redis","version":"7"}, then redis-cli -h $SLIPWAY_NODE_ADDRESS -p <nodePort> -a <password>)
  ssh-keygen -t ed25519 -f ~/.ssh/id_ed25519    # if you have no key yet
  curl -s -XPOST \$API/tenants/demo/workspaces -H "authorization: Bearer \$TOKEN" -H '$json' \\
       -d "{\"name\":\"box\",\"spec\":{\"sshKeys\":[\"\$(cat ~/.ssh/id_ed25519.pub)\"]}}"
  curl -s \$API/tenants/demo/workspaces/box -H "authorization: Bearer \$TOKEN"  # status.sshCommand
  ssh -p <nodePort> dev@$SLIPWAY_NODE_ADDRESS                                    # exactly status.sshCommand
  curl -s '$SLIPWAY_MAIL_API/api/v2/messages'                                # the "ready" emails

TRY
exec target/debug/slipway all
