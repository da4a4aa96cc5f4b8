#!/usr/bin/env bash
# Runs Slipway on this machine, as the README gives it:
#
#   hack/up.sh
#
# Builds what is missing, starts (or reuses) a local control plane and a MailHog mail
# catcher named `dev`, then runs `slipway all` (API + controllers, CRDs installed) in the
# foreground with a SQLite database. Ctrl-C stops Slipway; the cluster and mail catcher
# keep running (stop them with `hack/cluster.sh down dev; hack/mail.sh down dev`).
#
# Settings (all optional): SLIPWAY_LISTEN (default 127.0.0.1:8080), and any flag of
# `slipway all --help` through its environment variable.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

name=dev
hack/tools.sh
eval "$(hack/cluster.sh up "$name")"
eval "$(hack/mail.sh up "$name")"

state="$SLIPWAY_STATE/slipway/$name"
mkdir -p "$state"
# A key kept on disk, so access tokens survive a restart of the dev server.
[[ -s "$state/jwt-secret" ]] || (umask 077 && openssl rand -hex 32 >"$state/jwt-secret")
export SLIPWAY_JWT_SECRET="$(cat "$state/jwt-secret")"
export DATABASE_URL="${DATABASE_URL:-sqlite://$state/slipway.db?mode=rwc}"
export SLIPWAY_LISTEN="${SLIPWAY_LISTEN:-127.0.0.1:8080}"

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
  curl -s -XPOST \$API/tenants -H "authorization: Bearer \$TOKEN" -H '$json' -d '{"name":"demo","plan":"free"}'
  curl -s -XPOST \$API/tenants/demo/apps -H "authorization: Bearer \$TOKEN" -H '$json' \\
       -d '{"name":"web","spec":{"image":"nginxinc/nginx-unprivileged:1.27","port":8080,"replicas":2,"expose":{"type":"NodePort"}}}'
  curl -s \$API/tenants/demo/apps/web -H "authorization: Bearer \$TOKEN"     # status.phase becomes Ready
  curl -s -XPOST \$API/tenants/demo/databases -H "authorization: Bearer \$TOKEN" -H '$json' \\
       -d '{"name":"orders","spec":{"engine":"postgres","version":"17","storage":"1Gi"}}'
  curl -s \$API/tenants/demo/databases/orders/credentials -H "authorization: Bearer \$TOKEN"
  curl -s -XPOST \$API/tenants/demo/workspaces -H "authorization: Bearer \$TOKEN" -H '$json' \\
       -d "{\"name\":\"box\",\"spec\":{\"sshKeys\":[\"\$(cat ~/.ssh/id_ed25519.pub)\"]}}"
  curl -s \$API/tenants/demo/workspaces/box -H "authorization: Bearer \$TOKEN"  # status.sshCommand
  curl -s '$SLIPWAY_MAIL_API/api/v2/messages'                                # the "ready" emails

TRY
exec target/debug/slipway all
