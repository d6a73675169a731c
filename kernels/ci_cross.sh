#!/bin/sh
# Build and run the C kernel test vectors natively, on aarch64 (qemu-aarch64) and on a
# Cortex-M4F (qemu-system-arm -M mps2-an386, semihosting), with -Wall -Wextra -Werror (the
# kernels and the exported models' include/aq_input_quant.h). Installs nothing: the caller
# (.ci/run) apt-installs gcc-arm-none-eabi libnewlib-arm-none-eabi gcc-aarch64-linux-gnu
# libc6-dev-arm64-cross qemu-user qemu-system-arm first. Exit code 0 only if all pass.
set -eu
cd "$(dirname "$0")"
for tool in cc aarch64-linux-gnu-gcc qemu-aarch64 arm-none-eabi-gcc qemu-system-arm; do
    command -v "$tool" >/dev/null 2>&1 || { echo "ci_cross.sh: missing $tool (install the Debian packages listed in this script)" >&2; exit 2; }
done
make -s clean
echo "== host";    make -s WERROR=-Werror test
echo "== aarch64"; timeout 300 make -s WERROR=-Werror test-aarch64
echo "== m4";      timeout 300 make -s WERROR=-Werror test-m4
echo "ci_cross.sh: host, aarch64 and Cortex-M4 test vectors pass"
