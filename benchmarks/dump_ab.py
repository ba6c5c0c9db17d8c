"""Two (or more) models' dump time on the same pages, alternated round by round in one process.

    python benchmarks/dump_ab.py --models fast,runs/fast-convends/best --rounds 8

`throughput.py` runs each system in a process of its own, which measures its memory too. Here the models share
one process, and each round times every model once: `predict_dump` over the same JSONL input, as `pagesieve
predict` runs it, with the order reversed every other round. A model's speed against the first is read round by
round, as the first's time over its own in the same round, so that the machine's drift between rounds cancels.
It prints the median of those ratios, the ratio of the summed times, and in how many rounds the model was
faster. On 308 pages the per-round ratios of two fast-tier models still spread from 0.84 to 1.07 over eight
rounds (`docs/model-history.md`, candidate FE), so run several rounds and read all three figures. The pages are
`throughput.py`'s (`--gold`, `--limit`), from their HTML or text.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.throughput import SHARED, cold_word_cache, fresh, round_order, run_in_child, write_input  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    """Prints each model's median time and per-round ratios; returns its timings (seconds, in round order)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", required=True, help="comma-separated model folders or names (model, fast, cascade)")
    ap.add_argument("--rounds", type=int, default=8,
                    help="timings of each model, alternated (the order reversed every other round)")
    ap.add_argument("--input", choices=("HTML", "text"), default="HTML")
    ap.add_argument("--runtime", default="auto")
    ap.add_argument("--gold", default="validation")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--renderer", default="innertext")
    ap.add_argument("--corpora", default=str(SHARED / "corpora"))
    args = ap.parse_args(argv)
    names = args.models.split(",")
    if len(set(names)) != len(names) or not all(names):
        sys.exit(f"--models {args.models}: name each model once")

    from pagesieve.cli import passive_openmp

    passive_openmp()  # as `pagesieve predict` runs
    from pagesieve import Predictor
    from pagesieve.dump import predict_dump

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        loaded = run_in_child(dict(kind="pages", gold=args.gold.split(","), corpora=args.corpora,
                                   renderer=args.renderer, limit=args.limit), tmp)
        if "error" in loaded or not loaded["pages"]:
            sys.exit(f"no gold pages with HTML ({loaded.get('error', 'are the corpora at --corpora?')})")
        source = tmp / "pages.jsonl"
        write_input(loaded["pages"], args.input.lower(), source)
        models = {name: Predictor.from_pretrained(name, runtime=args.runtime) for name in names}

        def dump(p):
            predict_dump([str(source)], str(fresh(tmp / "out.jsonl")), predictor=p, renderer=args.renderer, progress=False)

        for p in models.values():
            dump(p)  # warm: kernels, allocator
        seconds = {name: [] for name in names}
        for r in range(args.rounds):
            for name in round_order(names, r):
                cold_word_cache(models[name])
                t = time.perf_counter()
                dump(models[name])
                seconds[name].append(time.perf_counter() - t)
    pages = len(loaded["pages"])
    first = seconds[names[0]]
    print(f"{pages} pages from {args.input}, {args.rounds} rounds; speed against {names[0]} (its time / this one's):")
    for name in names:
        median = statistics.median(seconds[name])
        # each round timed the models back to back: its ratio is the paired measure, drift between rounds cancels
        paired = [a / b for a, b in zip(first, seconds[name])]
        print(f"  {name}: median {median:.3f} s ({pages / median:.1f} pages/s); per round "
              f"{', '.join(f'{r:.3f}' for r in paired)}: median {statistics.median(paired):.3f}x, "
              f"all rounds {sum(first) / sum(seconds[name]):.3f}x, faster in {sum(r > 1 for r in paired)} of {len(paired)}")
    return seconds


if __name__ == "__main__":
    main()
