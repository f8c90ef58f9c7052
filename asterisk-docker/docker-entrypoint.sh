#!/bin/sh
# Renders /etc/asterisk/centrala/*.conf from the same CENTRALA_* variables (and defaults) as
# `centrala pbx up` does (centrala/pbx.py: render_generated_config; a unit test keeps the two
# identical), then runs Asterisk.
# CENTRALA_RENDER_ONLY=DIR renders into DIR and exits (used by that test).
set -eu

ari_url=${CENTRALA_ARI_URL:-http://127.0.0.1:8088/ari}
ari_user=${CENTRALA_ARI_USER:-centrala}
ari_password=${CENTRALA_ARI_PASSWORD:-centrala-local-ari}
ami_host=${CENTRALA_AMI_HOST:-127.0.0.1}
ami_port=${CENTRALA_AMI_PORT:-5038}
ami_user=${CENTRALA_AMI_USER:-centrala}
ami_secret=${CENTRALA_AMI_SECRET:-centrala-local-ami}
agi_host=${CENTRALA_AGI_HOST:-127.0.0.1}
agi_port=${CENTRALA_AGI_PORT:-4573}
app=${CENTRALA_INFOLINE_APP:-infoline}
survey_app=${CENTRALA_SURVEY_APP:-centrala-survey}
for v in "$ari_user" "$ari_password" "$ami_user" "$ami_secret" "$app" "$survey_app"; do
  case "$v" in
    ""|*[\;\[\]=,\"\'\ \	]*) echo "credentials and app name must be non-empty, without spaces, quotes, ; [ ] = or ," >&2; exit 2 ;;
  esac
done

# The FastAGI secret (centrala/settings.py: effective_agi_secret): the setting, else the one
# in DATA_DIR/agi-secret, generated there on first use (share DATA_DIR with `serve`, or set
# CENTRALA_AGI_SECRET for both).
agi_secret=${CENTRALA_AGI_SECRET:-}
if [ -z "$agi_secret" ]; then
  secret_file=${CENTRALA_DATA_DIR:-/var/lib/centrala}/agi-secret
  if [ ! -f "$secret_file" ]; then
    mkdir -p "$(dirname "$secret_file")"
    (umask 077 && head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' > "$secret_file")
  fi
  agi_secret=$(cat "$secret_file")
fi
case "$agi_secret" in
  *[!A-Za-z0-9_-]*) echo "CENTRALA_AGI_SECRET must be 16-128 of A-Z a-z 0-9 _ -" >&2; exit 2 ;;
esac
if [ ${#agi_secret} -lt 16 ] || [ ${#agi_secret} -gt 128 ]; then
  echo "CENTRALA_AGI_SECRET must be 16-128 of A-Z a-z 0-9 _ -" >&2; exit 2
fi

hostport=${ari_url#*://}; hostport=${hostport%%/*}
http_host=${hostport%:*}; http_port=${hostport##*:}
[ "$http_port" = "$hostport" ] && http_port=8088

out=${CENTRALA_RENDER_ONLY:-/etc/asterisk/centrala}
mkdir -p "$out"
printf 'bindaddr = %s\nbindport = %s\n' "$http_host" "$http_port" > "$out/http.conf"
printf '[%s]\ntype = user\nread_only = no\npassword = %s\n' "$ari_user" "$ari_password" > "$out/ari_users.conf"
printf 'bindaddr = %s\nport = %s\n' "$ami_host" "$ami_port" > "$out/manager_general.conf"
printf '[%s]\nsecret = %s\ndeny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\nread = all\nwrite = all\n' \
  "$ami_user" "$ami_secret" > "$out/manager_users.conf"
printf '[transport-udp]\ntype = transport\nprotocol = udp\nbind = 127.0.0.1:5060\n' > "$out/pjsip_transports.conf"
printf 'INFOLINE_APP = %s\nSURVEY_APP = %s\nCENTRALA_AGI = agi://%s:%s\nCENTRALA_AGI_SECRET = %s\n' \
  "$app" "$survey_app" "$agi_host" "$agi_port" "$agi_secret" > "$out/globals.conf"

[ -n "${CENTRALA_RENDER_ONLY:-}" ] && exit 0
chown -R asterisk:asterisk "$out"
chmod 640 "$out"/*.conf
exec "$@"
