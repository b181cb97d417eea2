# The agent image for Codex: Node.js and the Codex CLI, run as an
# unprivileged user. Building it needs the Node.js base image and the npm
# registry; scripts/agent-image codex builds an equivalent image with no
# image registry.
#
# Pinned like claude-code.Dockerfile: the base by the digest of
# node:22-bookworm-slim's index, Codex by its exact version. Its `codex`
# command is a small Node.js script that starts the native binary npm
# installs from the package's optional dependency for this platform.
FROM node:22-bookworm-slim@sha256:48e4b67d85f87bd551df43704e24d252f56cc5f8e9718841aace50f19948f0f9
RUN npm install -g --no-fund --no-audit @openai/codex@0.171.0 \
 && npm cache clean --force \
 && apt-get update && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
USER node
WORKDIR /workspace
ENTRYPOINT []
CMD ["codex"]
