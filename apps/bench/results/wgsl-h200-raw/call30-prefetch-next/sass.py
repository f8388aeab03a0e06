# Scan the NVIDIA driver's shader disk cache for ELF images and disassemble them, if the tools exist.
import os, subprocess, sys, shutil
root, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
tools = [t for t in ["nvdisasm", "cuobjdump"] if shutil.which(t) or os.path.exists(f"/usr/local/cuda/bin/{t}")]
print("tools:", tools)
n = 0
for dp, _, fs in os.walk(root):
    for f in fs:
        p = os.path.join(dp, f)
        data = open(p, "rb").read()
        print(p, len(data), data[:16].hex())
        i = data.find(b"\x7fELF")
        while i >= 0:
            blob = data[i:]
            q = os.path.join(out, f"elf{n}.bin"); open(q, "wb").write(blob); n += 1
            for t in tools:
                exe = shutil.which(t) or f"/usr/local/cuda/bin/{t}"
                args = [exe, "-c", q] if t == "nvdisasm" else [exe, "-sass", "-res-usage", q]
                r = subprocess.run(args, capture_output=True, text=True)
                open(q + f".{t}.txt", "w").write(r.stdout + r.stderr)
                print(t, q, r.returncode, (r.stdout + r.stderr)[:300].replace("\n", " | "))
            i = data.find(b"\x7fELF", i + 4)
print("elf images:", n)
