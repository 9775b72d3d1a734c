# DCNR image: the dcnr CLI with nats-server, OpenBLAS and the built kernel addon.
# Every service in docker-compose.yml runs a plain `dcnr …` command from this image.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libopenblas-dev build-essential python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# build-ca.crt, when the build context has one: a CA bundle npm must trust (a host behind
# a TLS-inspecting proxy; scripts/compose-test.sh puts the host's there). Optional: the
# glob matches nothing in a plain checkout.
COPY package.json package-lock.json build-ca.cr[t] ./
COPY native ./native
RUN if [ -f build-ca.crt ]; then export NODE_EXTRA_CA_CERTS=/app/build-ca.crt; fi \
 && npm ci --no-audit --no-fund && npm run build:native
COPY . .
ENTRYPOINT ["node", "bin/dcnr.js"]
CMD ["--help"]
