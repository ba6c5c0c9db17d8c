"""Speed, memory and accuracy of pagesieve's model tiers and of rule-based extractors, side by side in one run.

    python benchmarks/throughput.py                                   # released model(s) against trafilatura, resiliparse
    python benchmarks/throughput.py --models model,fast --repeat 3 --out throughput.json
    python benchmarks/throughput.py --runtimes torch,torch-int8,onnx,onnx-int8 --limit 100
    python benchmarks/throughput.py --gold validation,dev --synthetic 1000
    python benchmarks/throughput.py --device cuda --synthetic 10000

The pages: gold pages whose HTML is known (`--gold`: `validation` = data/gold/validation.jsonl.gz,
`dev` = ../shared/data/gold/dev.jsonl, or any labeled-page file; a page's HTML is its `html` field or
its record in the corpora), in a fixed shuffled order, `--limit N` of them. Every system gets the
same pages:
  - from HTML: the models render it to lines (`--renderer`, as `pagesieve predict` does) and label
    them; trafilatura and resiliparse extract the main text from it;
  - from text: the pages' rendering as a WET record holds it (one text per page); only the models
    (the extractors need the DOM: HTML only);
  - `--synthetic N`: the models on a dump of N pages of the same lines reshuffled into pages of
    20-250 lines (lines repeat more than in real dumps, which flatters the tokenizer's cache).
The models run through `predict_dump` (reading the JSONL input, labeling, writing the output), the
extractors over the same JSONL input, one page after the other.

Each system and input runs in a process of its own (`--repeat R` times, the systems alternated, the
median time kept), so its peak RSS is its own: Python, its imports, the pages and the system. Model
loading is not timed (`load_s` in the JSON); a few pages are run first to warm up. lines/s counts
the pages' rendered lines, the same number for every system.

Accuracy, on the gold lines of the same pages, as `pagesieve evaluate --baselines` counts it: an
extractor's line is content when it is found in the extracted text, any other line navigation; a
model's line takes the label of the same line in the model's own rendering (lines its rendering
lacks count as navigation; the share found is reported).

--no-model replaces the models' forward pass by constant probabilities (a cascade: both of its models, and its
fast tier's constant probabilities leave every line unsure): what is left (reading,
rendering, tokenizing, batching, merging windows, writing) bounds what any accelerator can reach.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
GOLD = {"validation": ROOT / "data" / "gold" / "validation.jsonl.gz", "dev": SHARED / "gold" / "dev.jsonl"}
WARM_PAGES = 5


def round_order(systems, r: int) -> list:
    """The systems in the order round r times them: reversed every other round, so the machine's drift spreads
    evenly over them."""
    systems = list(systems)
    return systems if r % 2 == 0 else systems[::-1]


def peak_rss_mb() -> float:
    """This process's peak RSS. On Linux VmHWM: ru_maxrss would carry over the parent's peak through
    fork and exec, and every child would report at least the parent's memory."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the extractors: HTML -> main text ------------------------------------------------------
def trafilatura_text(html: str) -> str:
    from pagesieve.evaluation import trafilatura_text as extract

    return extract(html)  # the call `pagesieve evaluate --baselines` scores: the run timed is the one scored


def resiliparse_text(html: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    # no list bullets: "• " before each list item would keep it from matching its line
    return extract_plain_text(html, main_content=True, list_bullets=False)


EXTRACTORS = {"trafilatura": trafilatura_text, "resiliparse": resiliparse_text}


# -- one system in its own process ------------------------------------------------------------
def run_extractor(spec: dict) -> dict:
    extract = EXTRACTORS[spec["system"]]
    with open(spec["input"], encoding="utf-8") as fh:
        for raw in fh.readlines()[:WARM_PAGES]:
            extract(json.loads(raw)["html"])
    t = time.perf_counter()
    with open(spec["input"], encoding="utf-8") as fh:
        texts = [extract(json.loads(raw)["html"]) for raw in fh]
    return {"seconds": time.perf_counter() - t, "pages": len(texts), "texts": texts}


def fresh(out: Path) -> Path:
    """`out` with no earlier output there: `predict_dump` keeps an output that the same run finished, and a timed run
    must label again."""
    for path in (out, out.with_name(out.name + ".summary.json")):
        path.unlink(missing_ok=True)
    return out


def cold_word_cache(predictor):
    """Empty the tokenizer's word cache, so timed pages start cold (a fast tier's encoder, also a
    cascade's, keeps it in `tokens`)."""
    getattr(predictor.encoder, "tokens", predictor.encoder).words.clear()


def without_model(predictor):
    """Replace the predictor's forward pass (a cascade's: both of its models') by constant probabilities."""
    import numpy as np
    import torch

    from pagesieve.fast import FastPredictor
    from pagesieve.labels import LABELS

    n = len(LABELS)
    for part in getattr(predictor, "parts", (predictor,)):
        if isinstance(part, FastPredictor):
            part.model.forward_packed = lambda **inputs: torch.zeros(sum(inputs["lengths"]), n)
        else:
            part._forward = lambda wins: [np.full((len(w.label_positions), n), 1 / n, np.float32) for w in wins]


def run_model(spec: dict) -> dict:
    import torch

    from pagesieve.dump import predict_dump
    from pagesieve.fast import FastPredictor
    from pagesieve.onnxrt import resolve_runtime
    from pagesieve.predictor import Predictor

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    t = time.perf_counter()
    p = Predictor.from_pretrained(spec["model"], device=spec["device"], runtime=spec["runtime"])
    load_s = time.perf_counter() - t
    if spec["no_model"]:
        without_model(p)

    def dump(path: Path, out: Path) -> dict:
        return predict_dump([str(path)], str(fresh(out)), predictor=p, batch_size=spec["batch_size"],
                            workers=spec["workers"], renderer=spec["renderer"], progress=False)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with open(spec["input"], encoding="utf-8") as fh:
            (tmp / "warm.jsonl").write_text("".join(fh.readlines()[:WARM_PAGES]), encoding="utf-8")
        dump(tmp / "warm.jsonl", tmp / "warm_out.jsonl")  # kernels, allocator, sessions
        cold_word_cache(p)  # not the warm pages' words: they are timed too
        t = time.perf_counter()
        summary = dump(Path(spec["input"]), tmp / "out.jsonl")
        seconds = time.perf_counter() - t
        with open(tmp / "out.jsonl", encoding="utf-8") as fh:
            labels = [json.loads(raw).get("labels") or [] for raw in fh]  # in input order; an error record: none
    return {"seconds": seconds, "pages": summary["records_in"], "labels": labels, "load_s": round(load_s, 2),
            "runtime": "+".join(q.runtime if isinstance(q, FastPredictor) else resolve_runtime(spec["runtime"], q.device.type)
                                for q in getattr(p, "parts", (p,))),
            "device": str(p.device), "threads": torch.get_num_threads()}


def child(spec_path: str):
    spec = json.loads(Path(spec_path).read_text())
    if spec["kind"] == "model":
        from pagesieve.cli import passive_openmp

        passive_openmp()  # as `pagesieve predict` runs
    if spec["kind"] == "pages":
        result = dict(zip(("pages", "no_html"), gold_pages(spec["gold"], Path(spec["corpora"]), spec["renderer"],
                                                           spec["limit"])))
    else:
        result = run_model(spec) if spec["kind"] == "model" else run_extractor(spec)
    result["peak_rss_mb"] = round(peak_rss_mb())
    Path(spec["result"]).write_text(json.dumps(result, ensure_ascii=False))


def run_in_child(spec: dict, tmp: Path) -> dict:
    spec = dict(spec, result=str(tmp / "result.json"))
    (tmp / "spec.json").write_text(json.dumps(spec))
    Path(spec["result"]).unlink(missing_ok=True)
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(tmp / "spec.json")])
    if done.returncode:
        return {"error": f"exit code {done.returncode}"}
    return json.loads(Path(spec["result"]).read_text())


# -- accuracy: every system's output as labels of the gold lines --------------------------------
def labels_on_gold(gold_lines: list[str], lines: list[str], labels: list[str | None]) -> list[int | None]:
    """Each gold line takes the label of the same line (same text, matched in order) among a model's
    lines; None where they lack it."""
    from difflib import SequenceMatcher

    from pagesieve.evaluation import _norm
    from pagesieve.labels import LABELS

    out = [None] * len(gold_lines)
    matcher = SequenceMatcher(None, [_norm(l) for l in gold_lines], [_norm(l) for l in lines], autojunk=False)
    for a, b, n in matcher.get_matching_blocks():
        for k in range(n):
            if b + k < len(labels) and labels[b + k] is not None:  # an error record has no labels
                out[a + k] = LABELS.index(labels[b + k])
    return out


def accuracy(pages: list[dict], input_kind: str, result: dict) -> dict:
    from pagesieve.evaluation import OTHER, gold_of, lines_in_text, report

    scored = [gold_of(p)[0] for p in pages]
    found = None
    if "texts" in result:
        preds = [lines_in_text(p["lines"], text) for p, text in zip(pages, result["texts"])]
    else:
        aligned = [labels_on_gold(p["lines"], p["input_lines"][input_kind], labels)
                   for p, labels in zip(pages, result["labels"])]
        found = sum(a[i] is not None for a, idx in zip(aligned, scored) for i in idx)
        preds = [[OTHER if c is None else c for c in a] for a in aligned]  # lost in the rendering: dropped
    r = report("", pages, preds)
    n = sum(map(len, scored))
    return {"macro_f1": r["macro_f1"], "content_f1": r["content"]["f1"], "gold_lines": n,
            "gold_lines_found": None if found is None else round(found / max(n, 1), 4)}


# -- the run ---------------------------------------------------------------------------------
def gold_pages(sources: list[str], corpora: Path, renderer: str, limit: int | None) -> tuple[list[dict], int]:
    """Gold pages with HTML, shuffled (fixed seed) and cut to `limit`, each with the lines every input
    gives the models. Also returns how many pages had no HTML."""
    from pagesieve.data import read_pages
    from pagesieve.evaluation import html_by_id
    from pagesieve.predictor import html_lines
    from pagesieve.text import split_lines

    os.environ["PAGESIEVE_CORPORA"] = str(corpora)  # where hash-only gold pages are rendered from (in its own process)
    pages = [p for s in sources for p in read_pages(GOLD.get(s, s))]
    need = {p["id"] for p in pages if not p.get("html")}
    found = html_by_id(corpora, need) if need and corpora.is_dir() else {}
    for p in pages:
        p["html"] = p.get("html") or found.get(p.get("id"))
    with_html = [p for p in pages if p["html"]]
    random.Random(0).shuffle(with_html)  # a small --limit still mixes corpora and sites
    with_html = with_html[:limit] if limit else with_html
    for p in with_html:
        rendered = html_lines(p["html"], renderer)
        p["text"] = "\n".join(rendered)  # what a WET record of the page holds
        p["input_lines"] = {"HTML": rendered, "text": split_lines(p["text"])}
    return with_html, len(pages) - len([p for p in pages if p["html"]])


def write_input(pages: list[dict], field: str, path: Path):
    """The pages as a dump's JSONL input: each record its id and its `html` or `text`."""
    with open(path, "w", encoding="utf-8") as fh:
        for p in pages:
            fh.write(json.dumps({"id": p["id"], field: p[field]}, ensure_ascii=False) + "\n")


def synthetic_dump(pages: list[dict], n: int, path: Path, seed: int = 0) -> int:
    """N pages of the pages' lines, reshuffled; returns their line count."""
    rng = random.Random(seed)
    pool = [l for p in pages for l in p["input_lines"]["text"] if l.strip()]
    total = 0
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            k = rng.randint(20, 250)
            start = rng.randrange(len(pool))
            fh.write(json.dumps({"id": f"syn{i}", "lines": [pool[(start + j) % len(pool)] for j in range(k)]},
                                ensure_ascii=False) + "\n")
            total += k
    return total


def model_specs(args) -> list[dict]:
    """One spec per model tier and runtime: the base model with each of --runtimes, the fast tier with those
    of them it runs (else auto)."""
    from pagesieve import fast, modeling

    specs = []
    for name in args.models.split(","):
        model = None if name in ("model", "base") else name
        folder = modeling.resolve(model)  # a Hub id: downloaded here, once, not in every child
        if not folder.exists():
            sys.exit(f"--models {name}: no such model folder ({folder})")
        shown = "base" if model is None else Path(name).name
        runtimes = args.runtimes.split(",")
        if fast.is_fast_dir(folder):  # the runtimes it has (auto: bf16 where native, else fp32)
            runtimes = [r for r in runtimes if r in fast.RUNTIMES] or ["auto"]
        for runtime in runtimes:
            specs.append(dict(kind="model", system=f"pagesieve {shown}", model=model, runtime=runtime,
                              device=args.device, batch_size=args.batch_size, threads=args.threads,
                              workers=args.workers, no_model=args.no_model, renderer=args.renderer))
    return specs


def default_models() -> str:
    from pagesieve import fast, modeling

    return "model,fast" if fast.is_fast_dir(modeling.default_model_dir() / "fast") else "model"


def summarize(row: dict, runs: list[dict], pages: list[dict], lines: int) -> dict:
    """One row of results: the median time of its runs, its peak RSS, and the accuracy of its first run."""
    ok = [run for run in runs if "error" not in run]
    name = row["system"]
    if row["kind"] == "model":
        name += f" {ok[0]['runtime'] if ok else row['runtime']}" + (" no-model" if row["no_model"] else "")
    out = {"system": name, "input": row["input"]}
    if not ok:
        return {**out, "error": runs[0]["error"]}
    first = ok[0]
    if row["kind"] == "model":
        out.update({k: first[k] for k in ("runtime", "device", "threads", "load_s")})
    seconds = statistics.median(run["seconds"] for run in ok)
    out.update(pages=first["pages"], lines=lines, seconds=[round(run["seconds"], 3) for run in ok],
               pages_per_s=round(first["pages"] / seconds, 2), lines_per_s=round(lines / seconds),
               peak_rss_mb=max(run["peak_rss_mb"] for run in ok))
    if row["input"] != "synthetic":
        out.update(accuracy(pages, row["input"], first))
    return out


def table(results: list[dict]) -> str:
    """The results as a Markdown table: speed, memory, accuracy, and speed relative to each extractor."""
    rows = ["| system | input | pages/s | lines/s | peak RSS (MB) | macro-F1 | content F1 | "
            + " | ".join(f"/ {name}" for name in EXTRACTORS) + " |", "|---" * (7 + len(EXTRACTORS)) + "|"]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['system']} | {r['input']} | failed: {r['error']} |" + " |" * (4 + len(EXTRACTORS)))
            continue
        f1 = f"{r['macro_f1']:.3f} | {r['content_f1']:.3f}" if "macro_f1" in r else "– | –"
        ratios = " | ".join(f"{r[f'ratio_to_{name}']:.2f}" if f"ratio_to_{name}" in r else "–" for name in EXTRACTORS)
        rows.append(f"| {r['system']} | {r['input']} | {r['pages_per_s']:.2f} | {r['lines_per_s']} | {r['peak_rss_mb']} | "
                    f"{f1} | {ratios} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=None,
                    help="comma-separated model folders, Hub ids or names: model (the released base model), "
                         "fast (the released fast tier), cascade (its own fast model, then the base model on the lines it "
                         "is unsure of); default: model,fast when the fast tier is released")
    ap.add_argument("--runtimes", default="auto",
                    help="runtimes of the models, compared in this run: auto (as `predict`: the base model onnx-int8 on "
                         "a CPU, torch on a GPU; the fast tier bf16 where native), torch, torch-int8, torch-bf16, onnx, "
                         "onnx-int8; the fast tier runs those of them it has (torch, torch-bf16, auto), else auto")
    ap.add_argument("--baselines", default="trafilatura,resiliparse", help="extractors, from the same HTML ('' for none)")
    ap.add_argument("--gold", default="validation",
                    help="comma-separated gold pages: validation, dev, or labeled-page files (pages without HTML are left out)")
    ap.add_argument("--limit", type=int, help="pages (default: all the gold pages with HTML)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each system, alternated; the median time is kept")
    ap.add_argument("--synthetic", type=int, default=0, help="also run the models on a synthetic dump of N pages")
    ap.add_argument("--out", help="write the results as JSON")
    ap.add_argument("--device", default=None)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--threads", type=int, default=0, help="torch threads of the models (default: torch's)")
    ap.add_argument("--workers", type=int, default=0,
                    help="rendering/tokenizing processes of the models (predict --workers; their memory is not in peak RSS)")
    ap.add_argument("--renderer", default="innertext", help="how the models (and the text input) render HTML")
    ap.add_argument("--no-model", action="store_true",
                    help="skip the forward pass (constant probabilities): the ceiling of the pipeline around the model")
    ap.add_argument("--corpora", default=str(SHARED / "corpora"))
    ap.add_argument("--child", help=argparse.SUPPRESS)  # internal: run one system (a spec file) in this process
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child)

    import importlib.util

    args.models = args.models or default_models()
    specs = model_specs(args)
    notes = []
    for name in filter(None, args.baselines.split(",")):
        if name not in EXTRACTORS:
            sys.exit(f"--baselines {name}: unknown extractor (choose from {', '.join(EXTRACTORS)})")
        if importlib.util.find_spec(name) is None:
            notes.append(f"{name}: not installed (pip install 'pagesieve[baselines]'), not measured")
            continue
        specs.append(dict(kind="extractor", system=name))

    with tempfile.TemporaryDirectory() as tmp:  # re-rendering hash-only gold holds the corpora (~2 GB): not in this process
        loaded = run_in_child(dict(kind="pages", gold=args.gold.split(","), corpora=args.corpora,
                                   renderer=args.renderer, limit=args.limit), Path(tmp))
    if "error" in loaded:
        sys.exit(f"reading the gold pages failed ({loaded['error']})")
    pages = loaded["pages"]
    if not pages:
        sys.exit("no gold pages with HTML (are the corpora at --corpora?)")
    n_lines = sum(len([l for l in p["input_lines"]["text"] if l.strip()]) for p in pages)
    print(f"{len(pages)} gold pages with HTML ({args.gold}; {loaded['no_html']} without HTML left out), {n_lines} lines",
          flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = {"HTML": tmp / "html.jsonl", "text": tmp / "text.jsonl"}
        for kind, field in (("HTML", "html"), ("text", "text")):
            write_input(pages, field, inputs[kind])
        lines_of = {"HTML": n_lines, "text": n_lines}
        if args.synthetic:
            inputs["synthetic"] = tmp / "synthetic.jsonl"
            lines_of["synthetic"] = synthetic_dump(pages, args.synthetic, inputs["synthetic"])
        rows = [dict(spec, input=kind) for spec in specs for kind in inputs
                if spec["kind"] == "model" or kind == "HTML"]  # the extractors need the DOM
        runs = [[] for _ in rows]
        for r in range(args.repeat):
            for i in round_order(range(len(rows)), r):
                row = rows[i]
                print(f"run {r + 1}/{args.repeat}: {row['system']} {row.get('runtime', '')} from {row['input']}", flush=True)
                runs[i].append(run_in_child(dict(row, input=str(inputs[row["input"]])), tmp))

    results = [summarize(row, row_runs, pages, lines_of[row["input"]]) for row, row_runs in zip(rows, runs)]
    for name in EXTRACTORS:  # ratios to each extractor's pages/s from the same HTML
        base = next((r for r in results if r["system"] == name and "pages_per_s" in r), None)
        for r in results:
            if base and "pages_per_s" in r:
                r[f"ratio_to_{name}"] = round(r["pages_per_s"] / base["pages_per_s"], 3)
    print("\n" + table(results))
    found = [f"{r['system']} from {r['input']} {r['gold_lines_found']:.1%}" for r in results if r.get("gold_lines_found") is not None]
    notes = [
        f"{len(pages)} pages, {n_lines} lines, {os.cpu_count()} CPUs; time: median of {args.repeat} run(s) per row, "
        "the systems alternated; model loading not timed",
        "peak RSS: each row's own process (Python, its imports, the input pages and the system)",
        "trafilatura and resiliparse take HTML only; from text (a WET record of the page) only the models run",
        "accuracy on the gold lines: an extractor's line is content when found in its text, else navigation; "
        "a model's line takes its label in the model's rendering (gold lines found: " + (", ".join(found) or "–") + ")",
    ] + notes
    print("\n" + "\n".join(f"- {n}" for n in notes))
    if args.out:
        Path(args.out).write_text(json.dumps({"gold": args.gold, "pages": len(pages), "lines": n_lines,
                                              "repeat": args.repeat, "cpus": os.cpu_count(), "rows": results,
                                              "notes": notes}, indent=1, ensure_ascii=False))
    return results


if __name__ == "__main__":
    main()
