"""The fast tier's forward pass alone: what a model shape costs before it is trained (issue 19).

    python benchmarks/fast_forward.py                                  # the fast tier and the cascade's fast model
    python benchmarks/fast_forward.py --variants FE-3L=model/cascade/fast:layers=3 --threads 1,2   # + a shape
    python benchmarks/fast_forward.py --profile                                 # also the torch profiler, by operator

`throughput.py`'s pages (`--gold`, `--limit`; their HTML rendered once), encoded once per model, then only
`FastPredictor.probs` is timed: the line vectors and the page transformer (with the packing of the inputs and the
softmax), in the runtime `pagesieve` picks on this machine (bf16 where native). The models alternate round by
round; printed: each one's median seconds per thread count. `--variants NAME=FOLDER:key=value,...` is FOLDER's
model with those `FastConfig` settings changed and random weights: a shape's cost does not depend on its weights,
so a candidate can be costed before its training. Parsing, rendering and tokenizing are not in these figures; `throughput.py` measures the whole dump.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.throughput import SHARED, gold_pages, round_order  # noqa: E402


def variant(spec: str):
    """NAME=FOLDER:key=value,... -> (NAME, FastPredictor with FOLDER's config so changed, random init)."""
    import yaml

    from pagesieve import Predictor
    from pagesieve.fast import FastPredictor, LinePageModel
    from pagesieve.modeling import word_table

    name, _, rest = spec.partition("=")
    folder, _, changes = rest.partition(":")
    if not name or not folder:
        raise SystemExit(f"--variants: {spec!r} is not NAME=FOLDER:key=value,...")
    pairs = [c.split("=", 1) for c in changes.split(",") if c]
    if any(len(kv) != 2 for kv in pairs):
        raise SystemExit(f"--variants: {spec!r}: settings are key=value")
    try:
        p = Predictor.from_pretrained(folder, runtime="auto")
    except (OSError, ValueError) as e:
        raise SystemExit(f"--variants: {spec!r}: {e}") from None
    if not isinstance(p, FastPredictor):
        raise SystemExit(f"--variants: {spec!r}: {folder} is not a fast-tier model")
    try:
        cfg = dataclasses.replace(p.cfg, **{k: yaml.safe_load(v) for k, v in pairs})
        # a new predictor, so that the encoder (line_tokens), the device and the config follow the changed settings
        return name, FastPredictor(LinePageModel(cfg, word_table()), p.encoder.tokens.tok, p.device, p.runtime)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"--variants: {spec!r}: {e}") from None


def main(argv=None) -> dict:
    """Returns {threads: {model: median seconds}}."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="fast,model/cascade/fast", help="comma-separated trained fast-tier folders")
    ap.add_argument("--variants", default="", help="space-separated NAME=FOLDER:key=value,... (default: none)")
    ap.add_argument("--gold", default="validation", help="as throughput.py: validation, dev, or labeled-page files")
    ap.add_argument("--limit", type=int, default=None, help="at most this many pages")
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts (default 1,2)")
    ap.add_argument("--rounds", type=int, default=6, help="alternated rounds per thread count (default 6)")
    ap.add_argument("--profile", action="store_true", help="also print the torch profiler's top operators per model")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    import torch

    from pagesieve import Predictor

    pages, _ = gold_pages(args.gold.split(","), SHARED / "corpora", "innertext", args.limit)
    lines = [p["input_lines"]["HTML"] for p in pages]
    models = {m: Predictor.from_pretrained(m, runtime="auto") for m in args.models.split(",") if m}
    models.update(variant(s) for s in args.variants.split())
    encoded = {m: p.encode(lines) for m, p in models.items()}
    print(f"{len(pages)} pages, {sum(map(len, lines))} lines; forward pass alone, medians of {args.rounds} rounds")
    result, threads_before = {}, torch.get_num_threads()
    try:
        for threads in map(int, args.threads.split(",")):
            torch.set_num_threads(threads)
            times = {m: [] for m in models}
            for r in range(args.rounds):
                for m in round_order(models, r):
                    t = time.perf_counter()
                    models[m].probs(encoded[m])
                    times[m].append(time.perf_counter() - t)
            result[threads] = {m: statistics.median(v) for m, v in times.items()}
            print(f"{threads} thread(s): " + ", ".join(f"{m} {s:.3f} s" for m, s in result[threads].items()))
    finally:
        torch.set_num_threads(threads_before)
    if args.profile:
        from torch.profiler import profile

        for m, p in models.items():
            with profile() as prof:
                p.probs(encoded[m])
            print(m)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    return result


if __name__ == "__main__":
    main()
