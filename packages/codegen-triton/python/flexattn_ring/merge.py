"""The exact merge of attention over disjoint key sets by log-sum-exp (mergeAttentionPartial of @flexattn/blockmask)."""
import torch


def merge_attention_partial(acc_out, acc_lse, out, lse):
    """Merge a partial result (out [..., rows, Dv], lse [..., rows], natural log, -inf for rows that saw no key)
    into the f32 accumulator (acc_out, acc_lse) in place: with m = max(lse_a, lse_b),
    lse = m + ln(e^(lse_a - m) + e^(lse_b - m)) and out = (out_a e^(lse_a - m) + out_b e^(lse_b - m)) / (sum).
    Start the accumulator at out 0, lse -inf. The arithmetic is f32 whatever out's dtype is."""
    if acc_out.dtype != torch.float32 or acc_lse.dtype != torch.float32:
        raise ValueError(f"the accumulator must be float32, got out {acc_out.dtype}, lse {acc_lse.dtype}")
    if acc_out.shape != out.shape or acc_lse.shape != lse.shape or acc_lse.shape != acc_out.shape[:-1]:
        raise ValueError(f"shapes differ: acc out {tuple(acc_out.shape)}, lse {tuple(acc_lse.shape)}; "
                         f"part out {tuple(out.shape)}, lse {tuple(lse.shape)}")
    lse = lse.float()
    if torch.isnan(lse).any() or (lse == float("inf")).any():
        raise ValueError("a partial LSE is NaN or +inf; an LSE must be finite or -inf")
    m = torch.maximum(acc_lse, lse)
    m = torch.where(m == float("-inf"), torch.zeros_like(m), m)  # both -inf: weights 0, the row stays empty
    wa, wb = torch.exp(acc_lse - m), torch.exp(lse - m)
    total = wa + wb
    seen = total > 0
    ca = torch.where(seen, wa / total, torch.ones_like(wa))
    cb = torch.where(seen, wb / total, torch.zeros_like(wb))
    acc_out.mul_(ca[..., None]).add_(out.float() * cb[..., None])
    acc_lse.copy_(torch.where(seen, m + torch.log(total), torch.full_like(m, float("-inf"))))
