# DCNR image: the dcnr CLI with nats-server, OpenBLAS and the built kernel addon.
# Every service in docker-compose.yml runs a plain `dcnr …` command from this image.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libopenblas-dev build-essential python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY native ./native
RUN npm ci --no-audit --no-fund && npm run build:native
COPY . .
ENTRYPOINT ["node", "bin/dcnr.js"]
CMD ["--help"]
