#!/bin/sh
# Runs Asterisk on the configuration Centrala rendered from its settings into
# /etc/asterisk/centrala/: the compose file's `pbx-config` service runs
# `centrala pbx render /etc/asterisk/centrala` (the very function `centrala pbx up` installs
# with, centrala/pbx.py: render_generated_config) into a volume mounted here. One renderer:
# the carrier trunks, numbers, SIP and RTP addresses and credentials are never written by hand.
set -eu

conf=${CENTRALA_RENDERED_CONFIG:-/etc/asterisk/centrala}
for f in http.conf ari_users.conf manager_general.conf manager_users.conf globals.conf \
    pjsip_transports.conf pjsip_trunks.conf numbers.conf rtp_ports.conf asterisk_options.conf \
    pjsip_nodes.conf nodes.conf; do
  if [ ! -f "$conf/$f" ]; then
    echo "no $conf/$f: render the configuration first (\`centrala pbx render $conf\`, the pbx-config service)" >&2
    exit 2
  fi
done
[ -n "${CENTRALA_CHECK_ONLY:-}" ] && exit 0
chown -R asterisk:asterisk "$conf"
chmod 640 "$conf"/*  # credentials, and the TLS key when there is one
exec "$@"
