#!/usr/bin/env bash
# Here (Debian 12): the packages the GPU build needs, as .deb files for `carry` (.gpu is git-ignored),
# and SentencePiece as built by scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpu/debs .gpu/spm
(cd .gpu/debs && apt-get download nlohmann-json3-dev libcli11-dev libfmt-dev libfmt9 libturbojpeg0-dev \
  libturbojpeg0 libjpeg62-turbo libpng-dev libpng16-16 zlib1g-dev libcurl4-openssl-dev libcurl4 libssl-dev \
  libssl3 libprotobuf-dev libprotobuf32 libcpp-httplib-dev libcpp-httplib0.11 libbrotli-dev libbrotli1 pkgconf \
  libpkgconf3 pkgconf-bin libnghttp2-14 librtmp1 libssh2-1 libpsl5 libidn2-0 libunistring2 libldap-2.5-0 \
  libsasl2-2 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 libzstd1 libgnutls30 \
  libhogweed6 libnettle8 libgmp10 libp11-kit0 libtasn1-6 libffi8 libsasl2-modules-db libdb5.3 libcom-err2 wrk libluajit-5.1-2 libluajit-5.1-common curl \
  libsqlite3-dev libsqlite3-0)
cp -r .deps/sentencepiece/. .gpu/spm/
