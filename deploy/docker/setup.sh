#!/bin/sh
# One-shot set-up for compose.yaml: once the control plane answers, registers the two
# sites the agents serve (file:// roots on a shared volume) and writes each agent's
# token, bound to its site, where that agent reads it. Safe to run again.
set -eu
export FERRY_SERVER=http://control-plane:50051
export FERRY_TOKEN_FILE=/var/lib/ferry/admin.token
i=0
until [ -s "$FERRY_TOKEN_FILE" ] && ferry whoami >/dev/null 2>&1; do
  i=$((i + 1))
  [ "$i" -lt 120 ] || { echo "the control plane did not answer" >&2; exit 1; }
  sleep 1
done
for pair in fast:hot archive:cold; do
  site=${pair%%:*}
  tier=${pair#*:}
  mkdir -p "/srv/sites/$site"
  ferry site get "$site" >/dev/null 2>&1 ||
    ferry site create "$site" --uri "file:///srv/sites/$site" --tier "$tier"
  [ -s "/tokens/agent-$site.token" ] ||
    ferry token create "agent-$site" --role agent --site "$site" \
      --secret-file "/tokens/agent-$site.token"
done
echo "sites and agent tokens ready"
