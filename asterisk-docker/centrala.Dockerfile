# Centrala itself (`centrala serve`). Build from the repository root:
#   docker build -f asterisk-docker/centrala.Dockerfile -t centrala .
FROM python:3.11-slim
WORKDIR /opt/centrala
COPY pyproject.toml README.md ./
COPY core core
COPY dialplan dialplan
COPY models models
COPY usecases usecases
COPY ari_app ari_app
COPY agi agi
COPY web web
COPY surveys surveys
COPY centrala centrala
RUN pip install --no-cache-dir .
ENV CENTRALA_LOG_FORMAT=json
CMD ["centrala", "serve"]
