"""A plain-torch kernel with the generated Triton module's interface, for running the ring where Triton cannot run
(CPU tests). It honors the same ABI: the block tables decide which blocks are computed (partial: mask applied, full:
mask skipped, others skipped), q_offset / kv_offset are added to the positions the mods see, and it returns the
natural-log LSE (-inf and output 0 for rows that see no key). f32 arithmetic."""
import math
from types import SimpleNamespace

import torch


def make_reference_kernel(mask_mod=None, score_mod=None, *, sparse_block=(128, 128), buffers=(), dtype=torch.float32,
                          qk_head_dim=None, v_head_dim=None):
    """A module-like object with flex_attention, SPARSE_BLOCK and BUFFERS, as a generated module has.

    mask_mod(b, h, q, kv, **buffers) and score_mod(score, b, h, q, kv, **buffers) take broadcastable index tensors
    (b [B,1,1,1], h [1,H,1,1], q [1,1,Lq,1], kv [1,1,1,Lkv], true positions) and the captured buffers by name.
    buffers: the BUFFERS entries (name, dtype, shape), in the generated module's order."""
    bq, bkv = sparse_block

    def flex_attention(q, k, v, kv_num_blocks=None, kv_indices=None, full_kv_num_blocks=None, full_kv_indices=None,
                       *, scale=None, return_lse=False, q_offset=0, kv_offset=0, out=None, **bufs):
        names = {b[0] for b in buffers}
        if set(bufs) != names:
            raise ValueError(f"captured buffers {sorted(names)} expected, got {sorted(bufs)}")
        tables = (kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices)
        s, keep = _scores(q.float(), k.float(), tables, scale, q_offset, kv_offset, bufs)
        vf = v.float().repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        s = torch.where(keep, s, torch.tensor(float("-inf")))
        lse = torch.logsumexp(s, dim=-1)
        p = torch.where(keep, torch.exp(s - torch.where(lse == float("-inf"), 0.0, lse)[..., None]), 0.0)
        o = torch.matmul(p, vf).to(q.dtype)
        if out is not None:
            out.copy_(o)
            o = out
        return (o, lse) if return_lse else o

    def flex_attention_backward(q, k, v, out, lse, dout, kv_num_blocks=None, kv_indices=None, full_kv_num_blocks=None,
                                full_kv_indices=None, *, scale=None, q_offset=0, kv_offset=0, **bufs):
        """dq, dk, dv from a kept out and lse, as the generated module's: P = exp(score - lse) on the kept keys,
        dS = P (dO Vt - rowsum(dO out)) through the score mod's derivative (autograd of score_mod)."""
        tables = (kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices)
        with torch.enable_grad():
            qf, kf, vf = (t.detach().float().requires_grad_() for t in (q, k, v))
            s_mod, keep = _scores(qf, kf, tables, scale, q_offset, kv_offset, bufs)
            p = torch.where(keep, torch.exp(s_mod - torch.where(lse == float("-inf"), 0.0, lse)[..., None].float()), 0.0)
            group = q.shape[1] // k.shape[1]
            vg = vf.repeat_interleave(group, dim=1)
            dp = torch.matmul(dout.float(), vg.transpose(-1, -2))
            delta = (dout.float() * out.float()).sum(-1, keepdim=True)
            ds = torch.where(keep, p * (dp - delta), 0.0)
            dq, dk = torch.autograd.grad(s_mod, (qf, kf), ds)
            dv = torch.matmul(p.transpose(-1, -2), dout.float())
            dv = dv.view(v.shape[0], v.shape[1], group, *dv.shape[2:]).sum(2)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)

    def _scores(qf, kf, tables, scale, q_offset, kv_offset, bufs):
        """Scores after the score mod (a function of qf and kf, for autograd) and which of them are kept."""
        B, Hq, Lq, D = qf.shape
        Lkv = kf.shape[2]
        scale = 1.0 / math.sqrt(D) if scale is None else scale
        s = torch.matmul(qf, kf.repeat_interleave(Hq // kf.shape[1], dim=1).transpose(-1, -2)) * scale
        bi = torch.arange(B).view(B, 1, 1, 1)
        hi = torch.arange(Hq).view(1, Hq, 1, 1)
        qi = (torch.arange(Lq) + q_offset).view(1, 1, Lq, 1)
        ki = (torch.arange(Lkv) + kv_offset).view(1, 1, 1, Lkv)
        if score_mod is not None:
            s = score_mod(s, bi, hi, qi, ki, **bufs).float()
        kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices = tables
        qb, kb = -(-Lq // bq), -(-Lkv // bkv)
        if kv_num_blocks is None:
            partial = torch.zeros((1, 1, qb, kb), dtype=torch.bool)
            full = torch.ones((1, 1, qb, kb), dtype=torch.bool)
        else:
            partial = _block_states(kv_num_blocks, kv_indices, kb)
            full = _block_states(full_kv_num_blocks, full_kv_indices, kb) if full_kv_num_blocks is not None else torch.zeros_like(partial)
        if partial.shape[2] != qb:
            raise ValueError(f"tables have {partial.shape[2]} query-block rows; Lq {Lq} needs {qb}")
        expand = lambda t: t.repeat_interleave(bq, 2).repeat_interleave(bkv, 3)[:, :, :Lq, :Lkv]  # noqa: E731
        keep = expand(full) | (expand(partial) & (mask_mod(bi, hi, qi, ki, **bufs) if mask_mod is not None else True))
        return s, keep.expand(B, Hq, Lq, Lkv)

    return SimpleNamespace(flex_attention=flex_attention, flex_attention_backward=flex_attention_backward,
                           SPARSE_BLOCK=(bq, bkv), BUFFERS=tuple(buffers), DTYPE=dtype, QK_HEAD_DIM=qk_head_dim,
                           V_HEAD_DIM=v_head_dim)


def _block_states(num, idx, kvb):
    """[Bm, Hm, QB, KVB] booleans: which blocks a (num, indices) table pair lists."""
    num, idx = num.cpu().long(), idx.cpu().long()
    valid = torch.arange(idx.shape[-1]) < num[..., None]
    hit = torch.zeros(idx.shape[:-1] + (kvb + 1,), dtype=torch.bool)
    hit.scatter_(-1, torch.where(valid, idx, kvb), True)
    return hit[..., :kvb]
