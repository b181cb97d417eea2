# The agent image of bottle's shipped Claude Code profile: Node.js and
# Claude Code, run as an unprivileged user. Building it needs the Node.js
# base image and the npm registry; scripts/agent-image claude builds an
# equivalent image with no image registry.
#
# Both are pinned so that every build gets the same image: the base by
# the digest of node:22-bookworm-slim's index (Node.js 22.23.2, built
# 2026-09-19; on another version, take the digest from `docker buildx
# imagetools inspect node:22-bookworm-slim`), Claude Code by its exact
# version. Change the version together with scripts/agent-image.
FROM node:22-bookworm-slim@sha256:48e4b67d85f87bd551df43704e24d252f56cc5f8e9718841aace50f19948f0f9
RUN npm install -g --no-fund --no-audit @anthropic-ai/claude-code@2.1.332 \
 && npm cache clean --force \
 && apt-get update && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
USER node
WORKDIR /workspace
ENTRYPOINT []
CMD ["claude"]
