# tailor for SageMaker (CPU): `docker run IMAGE train` runs a training job, `docker run IMAGE serve`
# an endpoint or batch transform (docs/sagemaker.md). Two stages: the build stage builds tailor with
# the project's own scripts; the runtime stage holds the program and the shared libraries it loads.
#
# BASE: Debian 12. On this machine (no registry) tools/container/base.sh makes it from debootstrap's
# root file system; elsewhere debian:bookworm-slim from a registry works as it is.
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
ENV DEBIAN_FRONTEND=noninteractive
# The base's own packages: their libraries are in the runtime stage already (collect_libs.sh skips them).
RUN dpkg-query -W -f '${Package}\n' | sed 's/:.*//' | sort > /base-packages.txt
# Build dependencies and SentencePiece (built from Debian's source package: Debian's shared library
# crashes next to libtorch) in a layer of their own, so that a change in the sources reuses it.
COPY scripts/setup.sh /src/scripts/setup.sh
RUN bash /src/scripts/setup.sh --build-only && rm -rf /var/lib/apt/lists/*
# Only what the program's build reads: a change in docs or tests keeps the layers below.
COPY CMakeLists.txt /src/
COPY scripts/build.sh /src/scripts/
COPY src /src/src
# Only the program (no tests or benchmarks); ccache's directory survives between image builds. The
# sloppiness lets ccache store the files compiled with libtorch's precompiled header too.
RUN --mount=type=cache,target=/root/.cache/ccache \
    export CCACHE_SLOPPINESS=pch_defines,time_macros && ccache --zero-stats >/dev/null && \
    TAILOR_BUILD_DIR=/src/build TAILOR_CMAKE_ARGS="-DTAILOR_BUILD_TESTS=OFF -DTAILOR_BUILD_BENCH=OFF" \
    bash /src/scripts/build.sh --target tailor && ccache --show-stats | grep -E "Hits|Misses"
COPY tools/container/collect_libs.sh /src/tools/container/
RUN install -D -s -m 755 /src/build/tailor /opt/tailor/bin/tailor && \
    bash /src/tools/container/collect_libs.sh /opt/tailor/bin/tailor /opt/tailor /base-packages.txt

FROM ${BASE}
# CA certificates: HTTPS to S3, Bedrock and catalogs' photo URLs. Nothing else comes from apt.
RUN apt-get update -qq && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null && \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
COPY --from=build /opt/tailor /opt/tailor
RUN echo /opt/tailor/lib > /etc/ld.so.conf.d/tailor.conf && ldconfig && \
    ln -s /opt/tailor/bin/tailor /usr/local/bin/tailor && tailor --help >/dev/null
# SageMaker's serving port (SAGEMAKER_BIND_TO_PORT may say another).
EXPOSE 8080
# Exec form: tailor is PID 1 and gets SageMaker's SIGTERM itself. `train` / `serve` with no other
# argument follow the training-job and endpoint contracts under /opt/ml.
ENTRYPOINT ["/usr/local/bin/tailor"]
