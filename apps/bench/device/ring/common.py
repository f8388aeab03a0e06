"""Shared by the ring device scripts: the generated entries (ring-generate.ts), their modules, tables and buffers."""
import gzip
import importlib.util
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
GENERATED = os.path.join(HERE, "generated")
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "..", "packages", "codegen-triton", "python"))

import flexattn_ring as ring  # noqa: E402

_DTYPES = {"i32": torch.int32, "f32": torch.float32}


def entries(n=None, variants=None):
    path = os.path.join(GENERATED, "index.json")
    if not os.path.exists(path):
        sys.exit(f"{path} is missing: run `npx tsx apps/bench/src/ring-generate.ts` first (and carry "
                 "apps/bench/device/ring/generated to the device)")
    with open(path) as f:
        items = json.load(f)["entries"]
    return [e for e in items if (n is None or e["N"] == n) and (not variants or e["variant"] in variants)]


def _load_module(path):
    name = "fa_ring_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _int32s(path):
    with open(path, "rb") as f:
        return torch.frombuffer(bytearray(gzip.decompress(f.read())), dtype=torch.int32)


class Entry:
    """One variant at one length: the generated module, its whole-sequence tables (raw, as the module takes them,
    and as flexattn_ring.BlockTables for planning) and its captured buffers (in the module's BUFFERS order)."""

    def __init__(self, e, device):
        self.info, self.device = e, device
        self.name = f"{e['variant']} N={e['N']}"
        self.module = _load_module(os.path.join(GENERATED, e["module"]))
        Bm, Hm, QB, KVB = e["dims"]
        flat = _int32s(os.path.join(GENERATED, e["tables"]))
        sizes = [Bm * Hm * QB, Bm * Hm * QB * KVB] * 2
        parts = torch.split(flat, sizes)
        shapes = [(Bm, Hm, QB), (Bm, Hm, QB, KVB)] * 2
        self.raw_tables = tuple(p.view(s).contiguous() for p, s in zip(parts, shapes))
        self.tables = ring.BlockTables(*self.raw_tables, block_size=tuple(e["blockSize"]), q_len=e["N"], kv_len=e["N"],
                                       B=e["B"], H=e["H"])
        self.device_tables = tuple(t.to(device) for t in self.raw_tables)
        self.buffers = ()
        if e["buffersFile"]:
            with open(os.path.join(GENERATED, e["buffersFile"]), "rb") as f:
                data = bytearray(gzip.decompress(f.read()))
            bufs, at = [], 0
            for b in e["buffers"]:
                n = 1
                for s in b["shape"]:
                    n *= s
                t = torch.frombuffer(data, dtype=_DTYPES[b["dtype"]], count=n, offset=at).view(*b["shape"])
                bufs.append(t.clone().to(device))
                at += 4 * n
            self.buffers = tuple(bufs)
        names = [b[0] for b in self.module.BUFFERS]
        if names != [b["name"] for b in e["buffers"]]:
            raise SystemExit(f"{self.name}: module buffers {names} differ from the index's {e['buffers']}")
        self.buffer_kw = dict(zip(names, self.buffers))

    def inputs(self, seed):
        """q, k, v [B, H, N, D] bf16, the same on every rank for a seed."""
        e = self.info
        g = torch.Generator(device=self.device).manual_seed(seed)
        shape = (e["B"], e["H"], e["N"], e["D"])
        return tuple(torch.randn(shape, generator=g, device=self.device, dtype=torch.float32).to(torch.bfloat16)
                     for _ in range(3))

    def plain(self, q, k, v):
        """The generated module on the whole sequence: single-device flex_attention."""
        return self.module.flex_attention(q, k, v, *self.device_tables, **self.buffer_kw, return_lse=True)


def plan(entry, world_size, strategy):
    if strategy == "auto":
        return ring.plan_context_parallel(entry.tables, world_size)
    return ring.plan_for_layout(entry.tables, ring.shard_layout(strategy, entry.info["N"], world_size, entry.tables.block_size))


def errors(out, lse, ref_out, ref_lse):
    """max |out - ref| / max(1, max |ref|) and the LSE's max abs difference (where finite)."""
    scale = max(1.0, float(ref_out.float().abs().max()))
    out_err = float((out.float() - ref_out.float()).abs().max()) / scale
    finite = torch.isfinite(ref_lse)
    lse_err = float((lse - ref_lse)[finite].abs().max()) if finite.any() else 0.0
    mismatched = int((torch.isfinite(lse) != finite).sum())
    return out_err, lse_err, mismatched


def cost_json(p):
    c = p.cost
    return {"strategy": p.layout.strategy, "chunkLen": p.layout.chunk_len, "ranks": [list(r) for r in p.layout.ranks],
            "rankWork": list(c.rank_work), "stepMax": list(c.step_max), "criticalPath": c.critical_path,
            "imbalance": c.imbalance, "kernelCalls": c.kernel_calls, "sends": c.sends}
