#!/usr/bin/env bash
# Compile every kernels/*.cu with nvcc for an H100 (sm_90), treating every warning as an error.
# This is a compile check only: it needs nvcc, not a GPU. On the GPU, CuPy compiles the same
# sources with NVRTC at first use; NVRTC has no host headers, so this script also rejects
# #include lines and the INFINITY / NAN macros, which nvcc would accept and NVRTC would not.
#
#   scripts/check_kernels.sh            # exits 0 when all kernels compile cleanly
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvcc >/dev/null 2>&1; then
    echo "check_kernels: nvcc not found, skipping the CUDA compile check"
    exit 0
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
for src in kernels/*.cu; do
    # Strip // comments, then look for what NVRTC cannot compile.
    forbidden='^[[:space:]]*#[[:space:]]*include|\b(INFINITY|NAN)\b'
    if sed 's://.*$::' "$src" | grep -nE "$forbidden"; then
        echo "FAIL $src: host headers and their macros are not available under NVRTC"
        status=1
        continue
    fi
    # --cubin runs ptxas as well, so its warnings (e.g. a stack frame) fail the check too.
    cubin="$out/$(basename "$src" .cu).cubin"
    if nvcc -arch=sm_90 --cubin -Werror all-warnings -o "$cubin" "$src"; then
        echo "ok   $src"
    else
        echo "FAIL $src"
        status=1
    fi
done
exit $status
