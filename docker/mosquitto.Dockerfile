# eclipse-mosquitto:local — a stand-in for the public eclipse-mosquitto:2 image, FROM scratch,
# out of Debian's /usr/sbin/mosquitto and the libraries `ldd` lists for it (staged by
# docker/build-local-images.sh). Same layout as the public image: the broker at
# /usr/sbin/mosquitto, its config at /mosquitto/config/mosquitto.conf (here the stack's own
# config/mosquitto/mosquitto.conf: port 1883, anonymous), data in /mosquitto/data, user 1883.
FROM scratch
COPY rootfs/ /
COPY --chown=1883:1883 mosquitto/ /mosquitto/
USER 1883:1883
VOLUME ["/mosquitto/data", "/mosquitto/log"]
EXPOSE 1883
CMD ["/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto.conf"]
