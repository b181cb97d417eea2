# bottle's sidecar bundle for bottles with the git gate. The gate runs the
# git binary (and ssh for ssh remotes), so this bundle starts from a Debian
# base rather than scratch: BOTTLE_BUNDLE_BASE, debian:12-slim by default.
# A base without git or ssh gets them from Debian's packages.
ARG BASE=debian:12-slim
FROM ${BASE}
RUN if ! command -v git >/dev/null || ! command -v ssh >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi
COPY bottle /bottle
ENTRYPOINT ["/bottle"]
