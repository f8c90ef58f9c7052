# The SIP load balancer in front of the Asterisk nodes: Debian's Kamailio with its dispatcher
# module, on the configuration in asterisk-docker/kamailio/ (mounted by compose.cluster.yaml).
#   docker build -f asterisk-docker/balancer.Dockerfile -t centrala-balancer .
FROM debian:sid-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends kamailio \
 && rm -rf /var/lib/apt/lists/*
COPY asterisk-docker/kamailio/kamailio.cfg /etc/kamailio/centrala.cfg
COPY asterisk-docker/kamailio/dispatcher.list /etc/kamailio/dispatcher.list
CMD ["kamailio", "-DD", "-E", "-f", "/etc/kamailio/centrala.cfg"]
