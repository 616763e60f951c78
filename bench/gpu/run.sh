#!/usr/bin/env bash
# The GPU verification, in one command, for a machine with a GPU, PyTorch and
# no network (the device machine): builds nothing. Needs dist/ and
# build/Release from a build on the development machine, and node (on PATH,
# or carried as .node/node.xz). Runs the GPU suite, then the benchmark
# against torch.nn.functional.batch_norm, and appends the table to
# bench/RESULTS.md (also copied to $OUT when set).
set -uo pipefail
cd "$(dirname "$0")/../.."

if ! command -v node >/dev/null 2>&1; then
  if [ -f .node/node.xz ]; then
    xz -dkc .node/node.xz > /tmp/node && chmod +x /tmp/node && export PATH="/tmp:$PATH"
  else
    echo "bench/gpu/run.sh: no node on PATH and no .node/node.xz" >&2
    exit 2
  fi
fi
out="${OUT:-/tmp/syncbn-gpu}"
mkdir -p "$out"
python="${PYTHON:-python3}"

# NCCL comes with PyTorch's wheels (nvidia-nccl-cu*), not on the loader's path.
if [ -z "${SYNCBN_NCCL_LIBRARY:-}" ]; then
  lib=$("$python" - <<'PY' 2>/dev/null
import glob, os, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()]
hits = [p for r in roots for p in glob.glob(os.path.join(r, 'nvidia', 'nccl', 'lib', 'libnccl.so*'))]
hits += [p for r in roots for p in glob.glob(os.path.join(r, 'torch', 'lib', 'libnccl.so*'))]
print(sorted(hits)[0] if hits else '')
PY
)
  [ -n "$lib" ] && export SYNCBN_NCCL_LIBRARY="$lib"
fi

echo "== GPU suite"
node test/gpu/check_cuda.js 2>&1 | tee "$out/gpu-tests.log"
tests=${PIPESTATUS[0]}

echo "== benchmark"
node bench/gpu/bench.js "$out/syncbn.json" && "$python" bench/gpu/torch_bench.py "$out/torch.json" \
  && node bench/gpu/report.js "$out/syncbn.json" "$out/torch.json" | tee "$out/results.md"
bench=$?
cp bench/RESULTS.md "$out/RESULTS.md" 2>/dev/null || true
exit $(( tests != 0 || bench != 0 ))
