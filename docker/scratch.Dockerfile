# cync-bridge:local — the user image's runtime, FROM scratch, out of files on this machine.
#
# No base image can be pulled in CI, so docker/build-local-images.sh stages the release binary,
# the shared libraries `ldd` lists for it, the dynamic loader, CA certificates, time zones and a
# passwd entry for user 10001 into a folder, and builds this file with that folder as context.
# Everything after the marker line is the runtime contract of the user Dockerfile, verbatim
# (tests/compose.rs checks it).
FROM scratch
COPY rootfs/ /
COPY --chown=10001:10001 data/ /data/

# --- runtime contract (docker/scratch.Dockerfile repeats it from here on) ---
# The generated device certificate lives in /data; listen on every interface inside the container
# (publish the ports you want with -p).
ENV CYNC_DATA_DIR=/data \
    CYNC_SERVER__LISTEN=0.0.0.0:23779 \
    CYNC_TELEMETRY__LISTEN=0.0.0.0:9464
USER 10001:10001
VOLUME ["/data"]
# 23779: devices (TLS). 9464: /metrics and /healthz.
EXPOSE 23779 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/cync-bridge", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/cync-bridge"]
CMD ["serve"]
