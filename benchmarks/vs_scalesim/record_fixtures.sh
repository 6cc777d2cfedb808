#!/usr/bin/env bash
# Record SCALE-Sim 3 reference results as JSON fixtures under tests/fixtures/scalesim/.
#
# Usage: benchmarks/vs_scalesim/record_fixtures.sh [lenet|sparse|edge|resnet|all]   (default: all)
# Env:   SCALESIM_VENV (default /work/venvs/scalesim), FIXTURES (default tests/fixtures/scalesim)
#
# Runs niced, one layer per process, one layer at a time. Rough cost on 2 shared cores:
# lenet ~15 s, sparse ~10 s, edge ~15 s, resnet (7 ResNet-18 layers x 3 dataflows, 32x32) ~5 min.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${SCALESIM_VENV:-/work/venvs/scalesim}"
PY="$VENV/bin/python"
OUT="${FIXTURES:-$ROOT/tests/fixtures/scalesim}"
WHAT="${1:-all}"
RESNET_LAYERS="conv1,layer1.0.conv1,layer2.0.conv1,layer2.0.downsample.0,layer3.0.conv2,layer4.1.conv2,fc"

[ -x "$PY" ] || { echo "error: $PY not found; run $HERE/install_scalesim.sh first" >&2; exit 2; }
mkdir -p "$OUT"
run() { nice -n 10 "$PY" "$HERE/run_scalesim.py" "$@"; }

if [ "$WHAT" = lenet ] || [ "$WHAT" = all ]; then
    for n in 8 16 32; do
        for df in os ws is; do
            run --topology "$HERE/topologies/lenet5.csv" --config "$HERE/configs/${df}_${n}x${n}.cfg" \
                --out "$OUT/lenet5_${df}_${n}x${n}.json"
        done
    done
fi

if [ "$WHAT" = sparse ] || [ "$WHAT" = all ]; then
    for cfg in sparse_ellpack_block_os_8x8 sparse_ellpack_block_ws_8x8 sparse_ellpack_block_is_8x8 \
               sparse_csr_ws_8x8 sparse_csc_ws_8x8; do
        run --topology "$HERE/topologies/lenet5.csv" --config "$HERE/configs/${cfg}.cfg" \
            --sparsity 2:4 --out "$OUT/lenet5_2of4_${cfg#sparse_}.json"
    done
    run --topology "$HERE/topologies/lenet5.csv" --config "$HERE/configs/sparse_ellpack_block_ws_16x16.cfg" \
        --sparsity 3:8 --out "$OUT/lenet5_3of8_ellpack_block_ws_16x16.json"
fi

if [ "$WHAT" = edge ] || [ "$WHAT" = all ]; then
    # Non-square arrays, output sizes that SCALE-Sim rounds up, a 1-pixel output, N:M with a
    # partial last block.
    for arr in 8x16 16x8; do
        for df in os ws is; do
            run --topology "$HERE/topologies/edge_cases.csv" --config "$HERE/configs/${df}_${arr}.cfg" \
                --out "$OUT/edge_cases_${df}_${arr}.json"
        done
    done
    for df in os ws is; do
        run --topology "$HERE/topologies/edge_cases.csv" \
            --config "$HERE/configs/sparse_ellpack_block_${df}_8x8.cfg" \
            --sparsity 1:3 --out "$OUT/edge_cases_1of3_ellpack_block_${df}_8x8.json"
    done
fi

if [ "$WHAT" = resnet ] || [ "$WHAT" = all ]; then
    for df in os ws is; do
        run --topology "$HERE/topologies/resnet18.csv" --config "$HERE/configs/${df}_32x32.cfg" \
            --layers "$RESNET_LAYERS" --out "$OUT/resnet18_layers_${df}_32x32.json"
    done
fi
