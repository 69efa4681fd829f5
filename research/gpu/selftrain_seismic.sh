#!/usr/bin/env bash
# One device call: self-train the shipped generator's seismic branch at a scale two CPU cores cannot
# reach, then measure the guided mode with it against the shipped branch (issue "physics-consistent
# generation": guided residual <= 0.5x the decoder mode's and below the direct-wave baseline; the
# seismic decoder is what limits it, docs/shipped_checkpoint.md).
#
#   OUT=/empty/folder bash research/gpu/selftrain_seismic.sh        # give the call ~540 s
#
# 1. build for this GPU (no network: the device image's python3 and torch);
# 2. the shipped store's recipe on the GPU (make-dataset flatvel-a 4000 / 400 / 64, seed 0), and all
#    4,000 training maps' gathers (resimulate --rows train): the real pairs;
# 3. research/probes/seismic_selftrain_probe.py on the GPU: N_GEN generated co-latents with their
#    solver gathers (job seed 1), STEPS steps at batch BATCH (half real, half generated), only the
#    seismic branch trains;
# 4. the new branch re-bound to the shipped diffusion model; benchmarks/bench_guided.py on the GPU
#    for the shipped and the new checkpoint (seed 0, 64 pairs, one shot per guided step, the
#    defaults otherwise): decoder-mode and guided residuals, baselines, time per pair.
# $OUT gets: final.pt (the trained autoencoder, ~14 MB), metrics.jsonl, guided_shipped.json,
# guided_selftrain.json, run.log. DRY=cpu: the same plumbing at a tiny scale on the CPU.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
OUT=${OUT:?set OUT to an empty folder}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
STEPS=${STEPS:-8000} N_GEN=${N_GEN:-8000} BATCH=${BATCH:-64}
NV=4000 NP=400 NTEST=64 NB=64 GB=512 DEV=cuda
if [[ ${DRY:-} == cpu ]]; then
  STEPS=3 N_GEN=8 BATCH=4 NV=16 NP=4 NTEST=4 NB=8 GB=8 DEV=cpu
else
  export PATH="$PATH:/usr/local/cuda/bin"
  ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d .)
  UBD_CUDA=ON "$PY" -m pip install -q --no-build-isolation --no-deps --no-index \
    -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="$ARCH" -Cbuild-dir="build/sm$ARCH" . \
    >"$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log"; exit 1; }
fi
A="$REPO/ubdiff_phys/assets/flatvel_a_small"
W=$(mktemp -d)
log() { echo "== $(date +%T) [${SECONDS}s] $*" | tee -a "$OUT/run.log"; }
# every command from $W, so the installed package (with its native module) is imported, never
# the checkout's sources
run() { (cd "$W" && "$@") 2>&1 | tee -a "$OUT/run.log"; }

log "real pairs: make-dataset ($NV maps, $NP paired, $NTEST test) and resimulate --rows train"
run "$PY" -m ubdiff_phys.cli make-dataset store.h5 --family flatvel-a --n-velocity "$NV" \
  --n-paired "$NP" --n-test "$NTEST" --seed 0 --boundary pml --device "$DEV" --compression none \
  --quiet
# uncompressed: gzip of 5.6 GB would take a single host core longer than the simulation
run "$PY" -m ubdiff_phys.cli resimulate store.h5 allpairs.h5 --rows train --device "$DEV" \
  --compression none --quiet

log "self-training the seismic branch ($N_GEN generated, $STEPS steps, batch $BATCH)"
run "$PY" "$REPO/research/probes/seismic_selftrain_probe.py" --checkpoint "$A" \
  --pairs allpairs.h5 --n-generated "$N_GEN" --steps "$STEPS" --batch "$BATCH" \
  --gen-batch "$GB" --device "$DEV" --preload --out selftrain
cp "$W/selftrain/final.pt" "$W/selftrain/metrics.jsonl" "$OUT/"

log "re-binding the diffusion model to the new branch"
run "$PY" -c "from ubdiff_phys.pipelines import rebind_diffusion; \
rebind_diffusion('$A/diffusion.pt', '$A/autoencoder.pt', 'selftrain/final.pt', 'diffusion_new')"

for name in shipped selftrain; do
  ckpt=$A
  [[ $name == selftrain ]] && ckpt="$W/diffusion_new"
  log "guided mode, $name branch (seed 0, $NB pairs)"
  run "$PY" "$REPO/benchmarks/bench_guided.py" --checkpoint "$ckpt" --n "$NB" --shots 1 \
    --device "$DEV" --out "$OUT/guided_$name.json"
done
log "done"
