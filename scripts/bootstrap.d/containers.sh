# The agent's docker probe tests (tests/fixtures/podman.py): podman's Docker-compatible API
# (`podman system service`), runc as its runtime (crun refuses a hybrid cgroup layout), busybox as
# the rootfs of a local image (no registry).
APT_PACKAGES+=(podman runc busybox)
