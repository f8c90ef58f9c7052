# Centrala itself (`centrala serve`). Build from the repository root:
#   docker build -f asterisk-docker/centrala.Dockerfile -t centrala .
FROM python:3.11-slim
WORKDIR /opt/centrala
COPY pyproject.toml README.md ./
COPY centrala centrala
COPY agi agi
COPY ari_app ari_app
COPY dialplan dialplan
COPY models models
RUN pip install --no-cache-dir .
ENV CENTRALA_LOG_FORMAT=json
CMD ["centrala", "serve"]
