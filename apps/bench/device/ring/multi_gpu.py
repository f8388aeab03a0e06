"""The ring over NCCL on several GPUs of one host (bf16, d=128, 16 heads):
  1. correctness at N=16k: each variant's ring output, gathered, against the plain module on the whole sequence
     (single-device flex_attention) within bf16 tolerance, for the chosen sharding and for contiguous shards;
  2. scaling at N=128k: tokens/s of the ring (chosen sharding and contiguous), timed with CUDA events after warmup.
With one process (world size 1) the ring is the plain module: that run is the scaling baseline.
Rank 0 writes $OUT/ring-multi-w<W>.json.

    for W in 1 2 4; do torchrun --standalone --nproc_per_node=$W apps/bench/device/ring/multi_gpu.py; done
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from common import Entry, cost_json, entries, errors, plan, ring  # noqa: E402

OUT = os.environ.get("OUT", "/tmp/ring-out")
TOLERANCE = 1e-2


def run_ring(entry, p, rank, shards):
    q, k, v = shards
    return ring.ring_flex_attention(q, k, v, *entry.buffers, plan=p, kernel=entry.module, return_lse=True)


def gathered(p, x, world_size):
    parts = [torch.empty_like(x) for _ in range(world_size)]
    dist.all_gather(parts, x.contiguous())
    return p.unshard(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--device", default="cuda", help="cuda (NCCL), or cpu (gloo: a dry run of the script's logic)")
    args = ap.parse_args()
    if args.device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
        # device_id: an eager NCCL communicator (see ring_flex_attention on batch_isend_irecv).
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device(args.device)
        dist.init_process_group("gloo")
    rank, W = dist.get_rank(), dist.get_world_size()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    strategies = ("auto", "contiguous") if W > 1 else ("auto",)
    name = torch.cuda.get_device_name() if device.type == "cuda" else str(device)
    report = {"meta": {"worldSize": W, "device": name, "torch": torch.__version__,
                       "command": f"torchrun --standalone --nproc_per_node={W} apps/bench/device/ring/multi_gpu.py"},
              "correctness": [], "scaling": []}
    failed = False
    for e in entries(n=16384):
        entry = Entry(e, device)
        q, k, v = entry.inputs(seed=1)
        ref = entry.plain(q, k, v) if rank == 0 else None
        for strategy in strategies:
            p = plan(entry, W, strategy)
            out, lse = run_ring(entry, p, rank, (p.shard(q, rank), p.shard(k, rank), p.shard(v, rank)))
            out, lse = gathered(p, out, W), gathered(p, lse, W)
            if rank == 0:
                out_err, lse_err, mismatched = errors(out, lse, *ref)
                ok = out_err < TOLERANCE and lse_err < TOLERANCE and mismatched == 0
                bitwise = bool(torch.equal(out, ref[0]) and torch.equal(lse, ref[1]))
                failed |= not ok
                report["correctness"].append({"variant": e["variant"], "N": e["N"], "choice": strategy, "outErr": out_err,
                                              "lseErr": lse_err, "nonFiniteMismatches": mismatched, "bitForBit": bitwise,
                                              "ok": ok, "plan": cost_json(p)})
                print(f"[W={W}] {entry.name} {strategy}->{p.layout.strategy}: out err {out_err:.2e} lse err {lse_err:.2e} "
                      f"bit-for-bit {bitwise} {'ok' if ok else 'FAIL'}", flush=True)
        del q, k, v, ref
    if not args.skip_scaling:
        for e in entries(n=131072):
            entry = Entry(e, device)
            q, k, v = entry.inputs(seed=2)
            for strategy in strategies:
                p = plan(entry, W, strategy)
                shards = (p.shard(q, rank), p.shard(k, rank), p.shard(v, rank))
                for _ in range(2):  # compile, loop forms, NCCL connections
                    run_ring(entry, p, rank, shards)
                sync()
                dist.barrier()
                t0 = time.perf_counter()
                for _ in range(args.iters):
                    run_ring(entry, p, rank, shards)
                sync()
                dist.barrier()
                seconds = (time.perf_counter() - t0) / args.iters
                if rank == 0:
                    tps = e["N"] * e["B"] / seconds
                    report["scaling"].append({"variant": e["variant"], "N": e["N"], "choice": strategy, "seconds": seconds,
                                              "tokensPerSecond": tps, "plan": cost_json(p)})
                    print(f"[W={W}] {entry.name} {strategy}->{p.layout.strategy}: {seconds * 1e3:.1f} ms, "
                          f"{tps:,.0f} tokens/s", flush=True)
                del shards
            del q, k, v
            if device.type == "cuda":
                torch.cuda.empty_cache()
    if rank == 0:
        os.makedirs(OUT, exist_ok=True)
        with open(os.path.join(OUT, f"ring-multi-w{W}.json"), "w") as f:
            json.dump(report, f, indent=1)
        print("FAILED" if failed else f"[W={W}] all ring checks passed", flush=True)
    dist.destroy_process_group()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
