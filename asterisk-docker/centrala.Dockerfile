# Centrala itself (`centrala serve`, and `centrala pbx render` for compose's pbx-config).
# Build from the repository root (tests/docker runs exactly this):
#   docker build -f asterisk-docker/centrala.Dockerfile -t centrala .
# Debian sid, as the Asterisk image: one base image, one distribution. graphviz: `dot` draws the
# flows' diagrams; fonts-liberation2 (only recommended by graphviz) gives it the text's widths.
FROM debian:sid-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv ca-certificates graphviz fonts-liberation2 \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv
WORKDIR /opt/centrala
COPY pyproject.toml README.md ./
COPY core core
COPY dialplan dialplan
COPY models models
COPY usecases usecases
COPY ari_app ari_app
COPY agi agi
COPY mail mail
COPY sms sms
COPY letters letters
COPY viber viber
COPY meta meta
COPY web web
COPY surveys surveys
COPY centrala centrala
RUN /opt/venv/bin/pip install --no-cache-dir . && rm -rf /opt/centrala/*
ENV PATH=/opt/venv/bin:$PATH
# The installed package is not a checkout: its state (secrets, tokens, recordings) lives in
# a volume (compose: centrala-data), never inside site-packages.
ENV CENTRALA_LOG_FORMAT=json CENTRALA_DATA_DIR=/var/lib/centrala
CMD ["centrala", "serve"]
