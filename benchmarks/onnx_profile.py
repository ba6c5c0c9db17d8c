"""Where the base model's ONNX Runtime time goes, operator by operator (issue 19: what a cheaper base model must cut).

    python benchmarks/onnx_profile.py                        # the released model, onnx-int8, 30 half-A pages
    python benchmarks/onnx_profile.py --pages 60 --disable ''                 # with every fusion
    python benchmarks/onnx_profile.py --pages 60 --ab 4                        # pagesieve's graph against every fusion

The released base model's windows of the first `--pages` labeled pages run one at a time on one thread, as
`pagesieve` runs them (`pagesieve.onnxrt.OnnxForward`), with ONNX Runtime's profiler on; printed: each operator
type's share of the kernel time, its calls, and the kernel time per token. `--disable` names the graph
optimizers switched off (ONNX Runtime's names; default: those `pagesieve.onnxrt.DISABLED_OPTIMIZERS` names, as
pagesieve runs). The profiler's times vary by ~10% from run to run, and it adds a cost to every operator run, so
a graph of more, smaller operators looks slower in it than it is. `--ab N` times instead, without the profiler,
the same windows through pagesieve's graph and through the graph with every fusion, alternated N times, on one
thread and on two (windows in parallel, as pagesieve runs them), and prints how many line labels differ.
Results: docs/model-history.md.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "runs" / "validation-A.jsonl"), help="labeled pages (JSONL)")
    ap.add_argument("--pages", type=int, default=30, help="how many of them (default 30)")
    ap.add_argument("--model", default="model", help="a base model folder (default: the released one)")
    ap.add_argument("--fp32", action="store_true", help="the fp32 export instead of int8")
    ap.add_argument("--disable", default=None,
                    help="comma-separated ONNX Runtime optimizers to switch off (default: pagesieve's; '' for none)")
    ap.add_argument("--top", type=int, default=15, help="operators printed (default 15)")
    ap.add_argument("--ab", type=int, default=0, metavar="N", help="time pagesieve's graph against every fusion, N rounds")
    args = ap.parse_args(argv)
    from pagesieve.onnxrt import DISABLED_OPTIMIZERS

    if args.disable is None:
        args.disable = ",".join(DISABLED_OPTIMIZERS)
    if args.ab and not args.disable:
        ap.error("--ab times the graph without the --disable optimizers against every fusion: name some")
    import numpy as np
    import onnxruntime as ort

    from pagesieve import Predictor

    base = Predictor.from_pretrained(args.model, runtime="onnx" if args.fp32 else "onnx-int8")
    with open(args.data, encoding="utf-8") as fh:
        pages = [json.loads(line)["lines"] for line, _ in zip(fh, range(args.pages))]
    windows = [w for page in base.encode(pages) for w in page.windows]
    feeds = [base.onnx.feed(np.array([w.input_ids]), np.ones((1, len(w.input_ids)), np.int64),
                            np.array([w.token_type_ids]), np.array([w.label_positions])) for w in windows]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if args.ab:
        return ab(ort, opts, base.onnx.path, feeds, args)
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(base.onnx.path), opts, providers=["CPUExecutionProvider"],
                                       disabled_optimizers=[d for d in args.disable.split(",") if d])
        for feed in feeds:
            session.run(["logits"], feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    time_of, calls = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            time_of[e["args"]["op_name"]] += e["dur"]
            calls[e["args"]["op_name"]] += 1
    total, tokens = sum(time_of.values()), sum(len(w.input_ids) for w in windows)
    print(f"{len(pages)} pages, {len(windows)} windows, {tokens:,} tokens: kernel time {total / 1e3:,.0f} ms, "
          f"{total / 1e3 / tokens:.4f} ms a token")
    print("| operator | kernel ms | share | calls |\n|---|---|---|---|")
    for op, us in time_of.most_common(args.top):
        print(f"| {op} | {us / 1e3:,.1f} | {us / total:.1%} | {calls[op]:,} |")


def ab(ort, opts, path, feeds, args):
    """Seconds for all windows, pagesieve's graph and every fusion alternated; the labels that differ."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    graphs = {f"without {args.disable or 'nothing'}": [d for d in args.disable.split(",") if d], "every fusion": []}
    sessions = {name: ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"], disabled_optimizers=off)
                for name, off in graphs.items()}
    labels = {name: np.concatenate([s.run(["logits"], f)[0][0] for f in feeds]).argmax(-1) for name, s in sessions.items()}
    a, b = labels.values()
    print(f"{len(feeds)} windows, {len(a):,} lines: labels differ on {np.mean(a != b):.2%}")
    for threads in (1, 2):
        seconds = {name: [] for name in sessions}
        for _ in range(args.ab):
            for name, s in sessions.items():
                start = time.perf_counter()
                with ThreadPoolExecutor(threads) as pool:
                    list(pool.map(lambda f: s.run(["logits"], f), feeds))
                seconds[name].append(time.perf_counter() - start)
        (n1, t1), (n2, t2) = seconds.items()
        print(f"{threads} thread(s): {n1} {' '.join(f'{t:.2f}' for t in t1)} s; {n2} {' '.join(f'{t:.2f}' for t in t2)} s; "
              f"median ratio {np.median(np.array(t2) / np.array(t1)):.2f}x")


if __name__ == "__main__":
    main()
