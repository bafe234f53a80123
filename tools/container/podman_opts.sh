# Sourced by the container scripts: podman's options for this machine. The sandbox these scripts were
# written in lets a process lower its resource limits but not raise them (podman's defaults for root
# are higher), and crun refuses its hybrid cgroups where runc works. $TAILOR_PODMAN_RUNTIME picks
# another runtime (default: runc where it is installed, else podman's own choice).
RUNTIME="${TAILOR_PODMAN_RUNTIME-$(command -v runc >/dev/null && echo runc)}"
PODMAN=(podman ${RUNTIME:+--runtime "$RUNTIME"})
ULIMITS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=32768:32768")
