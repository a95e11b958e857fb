#!/usr/bin/env bash
# The speed and memory check on a lent CUDA machine (an H200 here: Python 3.12 with torch, numpy,
# safetensors, pyyaml, onnx, sentencepiece, huggingface-hub, packaging, pytest and hypothesis
# installed; no network). One prepared run, sized to finish in about 6 minutes (8 at most: every
# step has a time cap and the whole script a deadline).
#
# Before the run, once, in the repository root of the machine that calls it, fetch the wheels the
# GPU machine lacks (bitsandbytes for nf4/int8; soundfile and its cffi/pycparser complete the
# project's dependencies) into .whl/, which must stay out of git:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 -d .whl \
#       bitsandbytes==0.50.2 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12
#
# (about 45 MB; bitsandbytes 0.50.2 ships libbitsandbytes_cuda130.so for torch's CUDA 13 build.)
# Then run it with .whl carried, e.g. the device tool's run(command="bash bench/gpu_check.sh",
# carry=[".whl"], timeout_s=540). Without .whl/ the project still installs and only nf4 is skipped.
#
# Writes into $OUT (bench/out when unset): gpu_check.log (everything) and gpu_tables.md (each
# bench's table under the command that made it, ready for the README). Nothing here fails on speed.

set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
TABLES="$OUT/gpu_tables.md"
DEADLINE=$((SECONDS + 470))
export PYTHONUNBUFFERED=1
: >"$LOG"
: >"$TABLES"

say() { echo "== $*" | tee -a "$LOG"; }

# step CAP_SECONDS TITLE COMMAND...: run under min(CAP, time left), log it, keep its table
step() {
    local cap=$1 title=$2
    shift 2
    local left=$((DEADLINE - SECONDS))
    if ((left < 20)); then
        say "skipped (deadline): $title"
        return
    fi
    ((cap > left)) && cap=$left
    say "$title: $* (cap ${cap}s)"
    local start=$SECONDS
    timeout "$cap" "$@" 2>&1 | tee -a "$LOG" | tee "$OUT/step.txt"
    local rc=${PIPESTATUS[0]}
    say "$title: exit $rc after $((SECONDS - start)) s"
    {
        echo "### $title"
        echo
        echo '```'
        echo "\$ $*"
        grep -v '^{' "$OUT/step.txt"
        echo '```'
        echo
    } >>"$TABLES"
    rm -f "$OUT/step.txt"
}

say "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 --version; } 2>&1 | tee -a "$LOG"

say "install: carried wheels and the project, offline, into /tmp/site"
shopt -s nullglob
wheels=(.whl/*.whl)
if ((${#wheels[@]})); then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "${wheels[@]}" 2>&1 | tee -a "$LOG"
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir --target /tmp/site . \
    2>&1 | tee -a "$LOG"
export PYTHONPATH=/tmp/site
python3 -c "import torch, stepaudio_core; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.get_device_name()); print('stepaudio_core from', stepaudio_core.__file__)" 2>&1 | tee -a "$LOG"
NF4=0
python3 -c "import bitsandbytes" >/dev/null 2>&1 && NF4=1
say "bitsandbytes importable: $NF4"

# The fast decode path against the plain loop on CUDA (identical ids and generator state), and the LM's parity.
step 100 "LM tests on CUDA" python3 -m pytest -q -p no:cacheprovider tests/test_lm_speed_paths.py tests/test_lm_model.py tests/test_awq.py
step 60 "LM decode cost by context (2 layers, real width, fp32)" python3 bench/lm.py --device cuda --tokens 32
step 150 "pipeline, bf16 LM, random weights" python3 bench/pipeline.py --device cuda --dtype bf16 --seconds 5 10 20
step 45 "edit 10 s with the plain per-token loop (for the ids-on-device gain)" \
    python3 bench/pipeline.py --device cuda --dtype bf16 --seconds 10 --jobs edit --check-every 1
step 45 "edit 10 s with the decode step replayed as a CUDA graph (an option)" \
    python3 bench/pipeline.py --device cuda --dtype bf16 --seconds 10 --jobs edit --decode-step cuda_graph
if ((NF4)); then
    step 150 "pipeline, nf4 LM layers, random weights" \
        python3 bench/pipeline.py --device cuda --dtype bf16 --quantization nf4 --seconds 5 10 20
else
    say "nf4 skipped: no bitsandbytes wheel in .whl/"
fi
step 60 "AWQ 4-bit LM: VRAM and decode speed vs bf16 (32 layers, random weights)" \
    python3 bench/awq.py --decode-device cuda --only-decode
step 45 "tokenizer, 20 s" python3 bench/tokenizer.py --device cuda --seconds 20 --repeats 3
step 40 "decoder, 10 s, fp32 flow" python3 bench/decoder.py --device cuda --seconds 10 --repeats 3
step 30 "decoder, 10 s, bf16 flow (a speed option)" python3 bench/decoder.py --device cuda --seconds 10 --repeats 3 \
    --flow-dtype bf16
say "done in $SECONDS s; tables in $TABLES"
