#!/bin/bash
# Bundled from the working tree just before commit 5df1163: the same sources except that staggerS and staggerSplit were still off by default (padS on) and the measured defaults still 128x16 at both head dims.
# Call 34: the sweep of 16- and 32-key tiles with and without staggerS + staggerSplit (S rows padded
# in all: padS), then the protocol on each variant's best swept config beside the anchors. The
# conformance suite ran on these options in call 33.
WGSL_S=390 ANCHOR_BUDGET_S=105 TORCH_S=130 bash apps/bench/device/wgsl/run.sh --subgroup-matrix --matrix-only --skip-conformance --unsafe
