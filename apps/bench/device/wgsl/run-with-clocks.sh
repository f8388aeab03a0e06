#!/usr/bin/env bash
# run.sh with the GPU's clocks, power, throttle reasons, utilization and memory sampled every
# 200 ms into $OUT/smi.csv, to tell kernel effects from the GPU's state (or other tenants).
set -uo pipefail
mkdir -p "$OUT"
nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv > "$OUT/smi-apps-before.csv" 2>&1
Q=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,utilization.gpu,memory.used,clocks_event_reasons.active
nvidia-smi --query-gpu=$Q --format=csv > /dev/null 2>&1 || Q=${Q/clocks_event_reasons/clocks_throttle_reasons}
nvidia-smi --query-gpu=$Q --format=csv -lms 200 > "$OUT/smi.csv" 2>&1 &
SMI=$!
bash "$(dirname "$0")/run.sh" "$@"
kill $SMI
nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv > "$OUT/smi-apps-after.csv" 2>&1
