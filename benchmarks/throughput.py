"""Throughput of `pagesieve predict` against trafilatura, measured side by side in one run.

    python benchmarks/throughput.py                       # CPU, released model, torch fp32
    python benchmarks/throughput.py --runtimes torch,torch-int8,onnx,onnx-int8 --synthetic 1000
    python benchmarks/throughput.py --device cuda --synthetic 10000

Prints pages/s, lines/s and peak memory (RSS) for:
  1. the gold dev pages (37 real pages, their lines) through `predict_dump`,
  2. the same pages from their HTML (from the corpora): rendered to lines, then labeled, which is
     what trafilatura is given,
  3. a synthetic dump of N pages (dev lines reshuffled into pages of 20-250 lines; lines repeat
     more than in real dumps, which flatters the tokenizer's once-per-distinct-line cache),
and trafilatura on the dev pages' HTML in the same process, with the ratio.

--no-model replaces the model's forward pass by constant probabilities: what is left (reading,
tokenizing, batching, merging windows, writing) bounds what any accelerator can reach.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_dump(pages: list[dict], n: int, path: Path, seed: int = 0):
    rng = random.Random(seed)
    pool = [l for p in pages for l in p["lines"]]
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            k = rng.randint(20, 250)
            start = rng.randrange(len(pool))
            lines = [pool[(start + j) % len(pool)] for j in range(k)]
            fh.write(json.dumps({"id": f"syn{i}", "lines": lines}, ensure_ascii=False) + "\n")


def run_dump(predictor, path: Path, out: Path, batch_size, workers: int = 0) -> tuple[float, int, int]:
    """(seconds, pages, lines) of predict_dump on a JSONL of lines or of HTML."""
    from pagesieve.dump import predict_dump

    t = time.perf_counter()
    s = predict_dump([str(path)], str(out), predictor=predictor, batch_size=batch_size, workers=workers,
                     progress=False)
    sec = time.perf_counter() - t
    n_lines = sum(len(json.loads(l).get("labels") or []) for l in open(out, encoding="utf-8"))
    return sec, s["records_in"], n_lines


def trafilatura_speed(html: list[str]) -> tuple[float, int] | None:
    try:
        import trafilatura
    except ImportError:
        return None
    if not html:
        return None
    t = time.perf_counter()
    for h in html:
        trafilatura.extract(h)
    return time.perf_counter() - t, len(html)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model folder (default: released)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--runtimes", default="torch",
                    help="comma-separated CPU runtimes to compare in this run: torch, torch-int8, onnx, onnx-int8")
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--workers", type=int, default=0, help="tokenizer processes (predict --workers)")
    ap.add_argument("--no-model", action="store_true",
                    help="skip the forward pass (constant probabilities): the ceiling of the pipeline around the model")
    ap.add_argument("--synthetic", type=int, default=None, help="pages in the synthetic dump (default 300 CPU, 10000 GPU)")
    ap.add_argument("--dev", default=str(SHARED / "gold" / "dev.jsonl"))
    ap.add_argument("--corpora", default=str(SHARED / "corpora"))
    args = ap.parse_args()

    import numpy as np
    import torch

    from pagesieve.predictor import Predictor

    if args.threads:
        torch.set_num_threads(args.threads)
    from pagesieve.evaluation import html_by_id

    dev = [json.loads(l) for l in open(args.dev, encoding="utf-8")]
    html = html_by_id(Path(args.corpora), {d["id"] for d in dev}) if os.path.isdir(args.corpora) else {}
    html = {k: h for k, h in html.items() if h}
    traf = trafilatura_speed(list(html.values()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dev_path = tmp / "dev.jsonl"
        with open(dev_path, "w", encoding="utf-8") as fh:
            for page in dev:
                fh.write(json.dumps({"id": page["id"], "lines": page["lines"]}, ensure_ascii=False) + "\n")
        html_path = tmp / "dev_html.jsonl"
        with open(html_path, "w", encoding="utf-8") as fh:
            for page_id, h in html.items():
                fh.write(json.dumps({"id": page_id, "html": h}, ensure_ascii=False) + "\n")
        for runtime in args.runtimes.split(","):
            t = time.perf_counter()
            p = Predictor.from_pretrained(args.model, device=args.device, runtime=runtime)
            load_s = time.perf_counter() - t
            if args.no_model:
                p._forward = lambda wins: [np.full((len(w.label_positions), 4), 0.25, np.float32) for w in wins]
            n_syn = args.synthetic if args.synthetic is not None else (10000 if p.device.type == "cuda" else 300)
            name = (runtime if p.device.type == "cpu" else str(p.device)) + (" no-model" if args.no_model else "")
            print(f"{name}: device {p.device} ({torch.get_num_threads()} threads), model load {load_s:.1f} s",
                  flush=True)
            run_dump(p, dev_path, tmp / "warm.jsonl", args.batch_size)  # warm-up (kernels, allocator)
            sec, pages, lines = run_dump(p, dev_path, tmp / "dev_out.jsonl", args.batch_size, args.workers)
            rows.append((name, "gold dev pages", pages, lines, sec))
            if html:
                sec, pages, lines = run_dump(p, html_path, tmp / "html_out.jsonl", args.batch_size, args.workers)
                rows.append((name, "same pages, HTML in", pages, lines, sec))
            if n_syn:
                syn = tmp / "syn.jsonl"
                synthetic_dump(dev, n_syn, syn)
                sec, pages, lines = run_dump(p, syn, tmp / "syn_out.jsonl", args.batch_size, args.workers)
                rows.append((name, f"synthetic dump", pages, lines, sec))
            del p
    traf_rate = traf[1] / traf[0] if traf else None
    print(f"\n| runtime | input | pages | lines | seconds | pages/s | lines/s | / trafilatura |\n|---|---|---|---|---|---|---|---|")
    for name, inp, pages, lines, sec in rows:
        ratio = f"{pages / sec / traf_rate:.3f}" if traf_rate else "-"
        print(f"| {name} | {inp} | {pages} | {lines} | {sec:.1f} | {pages / sec:.2f} | {lines / sec:.0f} | {ratio} |")
    print(f"\npeak RSS (whole run): {peak_rss_mb():.0f} MB")
    if traf:
        print(f"trafilatura on the same {traf[1]} dev pages' HTML, same run: {traf_rate:.1f} pages/s "
              "(the ratio column divides each row's pages/s by this)")
    else:
        print("trafilatura: not measured (not installed, or no corpora with the pages' HTML)")


if __name__ == "__main__":
    main()
