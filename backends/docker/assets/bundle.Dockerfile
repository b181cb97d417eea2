# bottle's sidecar bundle: the static bottle binary, which serves the
# built-in sidecars (`bottle sidecars --config ...`), and the host's CA
# bundle for the sidecars' own TLS connections upstream. It needs no base
# image, so it builds with no registry at all.
FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY bottle /bottle
USER 65534:65534
ENTRYPOINT ["/bottle"]
