"""Runs generated modules' forward on the CPU, without torch, triton or a GPU (used by the Triton fuzz test,
packages/flexattn/test/fuzz.test.ts): torch_standin.py for torch, triton_emulator.py for the kernel. Many cases in
one process, since starting Python and numpy costs more than a small case.

    python3 forward_module.py CASES.json OUT_DIR

CASES.json: a list of cases, each {module: path of the generated .py, dtype: "f32" | "f16", q / k / v: {shape,
strides, data: base64 of the storage from the view's first element (padding included, little-endian f32 or f16)},
tables: null (no mask) or {Bm, Hm, QB, KVB, kvNumBlocks, kvIndices, fullKvNumBlocks?, fullKvIndices?},
buffers: base64 of the captured buffers' data (little-endian i32 or f32) in the module's BUFFERS order, scale, qOffset, kvOffset}.
For case i it writes OUT_DIR/i.out (out, as float32) and OUT_DIR/i.lse (float32); the caller compares them with
the float64 reference. The module allocates out and lse itself, NaN-poisoned (torch_standin), so an element its
kernel never writes reads NaN there. A case that raises prints one line, "case i: <error>", and writes nothing.
"""
import base64
import json
import os
import sys
import tempfile
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_standin import NP, T, load  # noqa: E402

DTYPES = {"f32": "float32", "f16": "float16"}


def tensor(j, dtype):
    dt = DTYPES[dtype]
    base = np.frombuffer(base64.b64decode(j["data"]), dtype=np.dtype(NP[dt]).newbyteorder("<")).astype(NP[dt])
    return T(base, j["shape"], j["strides"], 0, dt)


def tables(tb):
    if tb is None:
        return (None, None, None, None)
    rows = (tb["Bm"], tb["Hm"], tb["QB"])
    table = lambda xs, shape: T.of(np.asarray(xs, np.int32).reshape(shape))  # noqa: E731
    partial = (table(tb["kvNumBlocks"], rows), table(tb["kvIndices"], (*rows, tb["KVB"])))
    if tb.get("fullKvNumBlocks") is None:
        return (*partial, None, None)
    return (*partial, table(tb["fullKvNumBlocks"], rows), table(tb["fullKvIndices"], (*rows, tb["KVB"])))


def run_case(i, case, out_dir):
    mod = load(case["module"], f"generated_fwd_{i}")
    q, k, v = (tensor(case[n], case["dtype"]) for n in ("q", "k", "v"))
    if len(case["buffers"]) != len(mod.BUFFERS):
        raise ValueError(f"{len(case['buffers'])} buffers given, the module takes {len(mod.BUFFERS)}")
    bufs = {spec[0]: T.of(np.frombuffer(base64.b64decode(data), "<i4" if spec[1] == "int32" else "<f4")
                          .astype(np.int32 if spec[1] == "int32" else np.float32).reshape(spec[2]))
            for spec, data in zip(mod.BUFFERS, case["buffers"])}
    out, lse = mod.flex_attention(q, k, v, *tables(case["tables"]), **bufs, scale=case["scale"],
                                  q_offset=case["qOffset"], kv_offset=case["kvOffset"], return_lse=True)
    np.ascontiguousarray(out.a, np.float32).tofile(os.path.join(out_dir, f"{i}.out"))
    np.ascontiguousarray(lse.a, np.float32).tofile(os.path.join(out_dir, f"{i}.lse"))


def main():
    cases_path, out_dir = sys.argv[1:3]
    os.environ["FLEXATTN_CACHE_DIR"] = tempfile.mkdtemp(prefix="flexattn-fwd-test-")
    cases = json.load(open(cases_path))
    for i, case in enumerate(cases):
        try:
            run_case(i, case, out_dir)
        except Exception as e:  # noqa: BLE001 - reported per case, the others still run
            where = traceback.extract_tb(e.__traceback__)[-1]
            print(f"case {i}: {type(e).__name__}: {e} (at {os.path.basename(where.filename)}:{where.lineno})".replace("\n", " "))


if __name__ == "__main__":
    main()
