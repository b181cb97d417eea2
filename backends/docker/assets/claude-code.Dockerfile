# The agent image of bottle's shipped Claude Code profile: Node.js and
# Claude Code, run as an unprivileged user. Building it needs the Node.js
# base image and the npm registry.
FROM node:22-slim
RUN npm install -g @anthropic-ai/claude-code \
 && apt-get update && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
USER node
WORKDIR /workspace
ENTRYPOINT []
CMD ["claude"]
