"""Structural check of the two paths of a kernel generated with options.tma (used by tma.test.ts).

    python3 tma_paths.py PLAIN.py TMA.py [PLAIN.py TMA.py ...]

For each pair (the same spec generated without and with `tma`), specializes the TMA module's kernel
on the constexpr USE_TMA (keeping the taken branch of every `if USE_TMA:`, as Triton does) and checks:
  - USE_TMA = False gives exactly the plain module's kernel (same AST);
  - USE_TMA = True gives the plain kernel with only the loads of qt / kt / vt and the store of o
    replaced: pointer loads and stores on one side, descriptor loads and stores on the other,
    at the same places, with nothing else different.
Prints one line per failure; no output means every pair passed.
"""
import ast
import sys

KERNEL = "_flexattn_fwd_kernel"
TILES = {"qt", "kt", "vt"}
PTRS = {"q_ptrs", "k_ptrs", "v_ptrs", "o_ptrs"}
# Each descriptor covers its (batch, head)'s [len, head dim] slice, from the pointer path's base.
_QBASE = "q + off_b.to(tl.int64) * stride_q_b + off_h.to(tl.int64) * stride_q_h"
_OBASE = "out + off_b.to(tl.int64) * stride_out_b + off_h.to(tl.int64) * stride_out_h"
DESCRIPTORS = {
    "q_desc": f"tl.make_tensor_descriptor({_QBASE}, shape=[q_len, QK_D], strides=[stride_q_s, 1], block_shape=[BLOCK_M, QK_D_PAD])",
    "k_desc": "tl.make_tensor_descriptor(k_base, shape=[kv_len, QK_D], strides=[stride_k_s, 1], block_shape=[BLOCK_N, QK_D_PAD])",
    "v_desc": "tl.make_tensor_descriptor(v_base, shape=[kv_len, V_D], strides=[stride_v_s, 1], block_shape=[BLOCK_N, V_D_PAD])",
    "o_desc": f"tl.make_tensor_descriptor({_OBASE}, shape=[q_len, V_D], strides=[stride_out_s, 1], block_shape=[BLOCK_M, V_D_PAD])",
}
ACCESSES = {"qt": "q_desc.load([start_m, 0])", "kt": "k_desc.load([start_n, 0])", "vt": "v_desc.load([start_n, 0])",
            "o": "o_desc.store([start_m, 0], o)"}


def kernel(path):
    tree = ast.parse(open(path).read())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == KERNEL:
            return node
    raise ValueError(f"{path}: no {KERNEL}")


class Specialize(ast.NodeTransformer):
    """Keep the taken branch of every `if USE_TMA:` and drop the USE_TMA parameter."""

    def __init__(self, use_tma):
        self.use_tma = use_tma
        self.branches = 0

    def visit_FunctionDef(self, node):
        node.args.args = [a for a in node.args.args if a.arg != "USE_TMA"]
        self.generic_visit(node)
        return node

    def visit_If(self, node):
        self.generic_visit(node)
        if isinstance(node.test, ast.Name) and node.test.id == "USE_TMA":
            self.branches += 1
            return (node.body if self.use_tma else node.orelse) or []
        return node


def marker(name):
    return ast.Expr(ast.Name(id=name, ctx=ast.Load()))


def is_call(node, func):
    return isinstance(node, ast.Call) and ast.unparse(node.func) == func


class Sites(ast.NodeTransformer):
    """Replace each load of a tile and the store of o by a marker; drop pointer/descriptor set-up.
    Records anything unexpected in `odd`."""

    def __init__(self):
        self.odd = []
        self.descriptors = []

    def visit_If(self, node):
        # The pointer path's `if EVEN_x: t = tl.load(...) else: t = tl.load(..., mask=...)` and the o store.
        stmts = node.body + node.orelse
        if isinstance(node.test, ast.Name) and node.test.id in ("EVEN_M", "EVEN_N") and len(node.body) == 1:
            if all(isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name)
                   and s.targets[0].id in TILES and is_call(s.value, "tl.load") for s in stmts):
                names = {s.targets[0].id for s in stmts}
                if len(names) == 1:
                    return marker(f"LOAD_{names.pop()}")
            if all(isinstance(s, ast.Expr) and is_call(s.value, "tl.store")
                   and ast.unparse(s.value.args[0]) == "o_ptrs" for s in stmts):
                return marker("STORE_o")
        self.generic_visit(node)
        return node

    def visit_Assign(self, node):
        target = node.targets[0].id if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) else None
        if target in PTRS:
            return []
        if is_call(node.value, "tl.make_tensor_descriptor"):
            if ast.unparse(node.value) != DESCRIPTORS.get(target):
                self.odd.append(f"unexpected descriptor: {ast.unparse(node)}")
            self.descriptors.append(target)
            return []
        if target in TILES and isinstance(node.value, ast.Call):
            func = ast.unparse(node.value.func)
            if func == f"{target[0]}_desc.load":
                if ast.unparse(node.value) != ACCESSES[target]:
                    self.odd.append(f"unexpected descriptor load: {ast.unparse(node)}")
                return marker(f"LOAD_{target}")
            if func == "tl.load" or func.endswith(".load"):
                self.odd.append(f"unexpected load of {target}: {ast.unparse(node)}")
        return node

    def visit_Expr(self, node):
        if isinstance(node.value, ast.Call) and ast.unparse(node.value.func) == "o_desc.store":
            if ast.unparse(node.value) != ACCESSES["o"]:
                self.odd.append(f"unexpected descriptor store: {ast.unparse(node)}")
            return marker("STORE_o")
        return node


def sites(fn):
    s = Sites()
    out = s.visit(ast.parse(ast.unparse(fn)))
    return ast.dump(out), s.odd, sorted(s.descriptors)


def check(plain_path, tma_path):
    errors = []
    plain = kernel(plain_path)
    if "USE_TMA" in ast.unparse(plain):
        errors.append(f"{plain_path}: the plain module mentions USE_TMA")
    for use_tma in (False, True):
        spec = Specialize(use_tma)
        fn = spec.visit(ast.parse(ast.unparse(kernel(tma_path)))).body[0]
        if spec.branches < 5:  # K/V descriptors, Q, K per loop, V per loop, O
            errors.append(f"{tma_path}: only {spec.branches} `if USE_TMA:` branches")
        if not use_tma:
            if ast.dump(fn) != ast.dump(plain):
                errors.append(f"{tma_path}: USE_TMA=False is not the plain kernel")
            continue
        text = ast.unparse(fn)
        for bad in ("tl.load(q_ptrs", "tl.load(k_ptrs", "tl.load(v_ptrs", "tl.store(o_ptrs"):
            if bad in text:
                errors.append(f"{tma_path}: USE_TMA=True still has {bad}")
        a, odd_a, desc_a = sites(plain)
        b, odd_b, desc_b = sites(fn)
        errors += [f"{plain_path}: {o}" for o in odd_a] + [f"{tma_path}: {o}" for o in odd_b]
        if desc_a or desc_b != sorted(DESCRIPTORS):
            errors.append(f"{tma_path}: descriptors {desc_b} (plain: {desc_a}); expected each of {sorted(DESCRIPTORS)} once")
        if a != b:
            errors.append(f"{tma_path}: USE_TMA=True differs from the plain kernel beyond the loads and the store")
        for m in ("LOAD_qt", "LOAD_kt", "LOAD_vt", "STORE_o"):
            if m not in a:
                errors.append(f"{plain_path}: no {m} site found")
    return errors


if __name__ == "__main__":
    args = sys.argv[1:]
    bad = []
    for i in range(0, len(args), 2):
        try:
            bad += check(args[i], args[i + 1])
        except Exception as e:  # a parse error is a failure too
            bad.append(f"{args[i + 1]}: {e!r}")
    print("\n".join(bad))
