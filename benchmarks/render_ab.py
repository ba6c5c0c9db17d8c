"""A change to the HTML renderer against the code before it: the same lines, and the time they take.

    git worktree add /tmp/before <the commit before the change>
    python benchmarks/render_ab.py --other /tmp/before                     # the 308 validation pages
    python benchmarks/render_ab.py --other /tmp/before --corpus-pages 50   # and 50 pages of each corpus

`pagesieve/html.py` of this checkout and of `--other` (another checkout of pagesieve) render the same pages with
each renderer (innertext, textcontent, wet): every page must give the same lines with the same source elements
(tag and characters) each, or the same error. Gold labels are stored as line hashes, so a renderer change that
alters one line changes what the gold pages are. Then both turn the validation pages into lines (innertext, text
only, as `pagesieve predict` does) in alternated rounds, from the HTML (parsing and rendering, each checkout its own
`parse`) and from the parsed pages (rendering alone); printed: the medians.
"""
from __future__ import annotations

import argparse
import gzip
import importlib.util
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.throughput import SHARED, gold_pages, round_order  # noqa: E402


def load_other_renderer(checkout: Path):
    """`pagesieve/html.py` of another checkout, as a module of its own. (One older than 0.7.0 registers its codec
    error handler under the name this checkout's used to have; this one's name is its own.)"""
    spec = importlib.util.spec_from_file_location("render_other", checkout / "pagesieve" / "html.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_other"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def rendered(module, html: str, style: str):
    try:
        return [(line.text, [(el.tag, n) for el, n in line.sources]) for line in module.render(html, style)]
    except Exception as e:  # the same error on both sides is the same result
        return f"{type(e).__name__}: {e}"


def main(argv=None) -> dict:
    """Returns {"pages": n, "differ": [(page index, renderer)], "seconds": {"this": s, "other": s} (rendering),
    "parse_seconds": {"this": s, "other": s} (parsing and rendering)}."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--other", required=True, type=Path, help="another checkout of pagesieve (the code before)")
    ap.add_argument("--gold", default="validation", help="as throughput.py: validation, dev, or labeled-page files")
    ap.add_argument("--corpus-pages", type=int, default=0, help="also the first N pages of each corpus (default 0)")
    ap.add_argument("--rounds", type=int, default=5, help="alternated timing rounds (default 5)")
    args = ap.parse_args(argv)
    if not (args.other / "pagesieve" / "html.py").is_file():
        raise SystemExit(f"--other {args.other}: no pagesieve/html.py there")
    from pagesieve import html as this

    other = load_other_renderer(args.other)
    timed = [p["html"] for p in gold_pages(args.gold.split(","), SHARED / "corpora", "innertext", None)[0]]
    pages = list(timed)
    for corpus in sorted((SHARED / "corpora").glob("*.jsonl.gz")) if args.corpus_pages else ():
        with gzip.open(corpus, "rt", encoding="utf-8") as fh:
            pages += [h for h in (json.loads(raw).get("html") for raw in itertools.islice(fh, args.corpus_pages)) if h]
    differ = [(i, style) for i, html in enumerate(pages) for style in this.RENDERERS
              if rendered(this, html, style) != rendered(other, html, style)]
    print(f"{len(pages)} pages x {len(this.RENDERERS)} renderers: {len(differ)} differ" +
          "".join(f"\n  page {i}, {style}" for i, style in differ[:20]))
    roots = [this.parse(html) for html in timed]
    medians = {}
    for what, inputs in (("parse + render", timed), ("render", roots)):
        seconds = {"this": [], "other": []}
        for r in range(args.rounds):
            for name, module in round_order((("this", this), ("other", other)), r):
                t = time.perf_counter()
                for page in inputs:
                    module.render(page, "innertext", sources=False)
                seconds[name].append(time.perf_counter() - t)
        m = medians[what] = {k: statistics.median(v) for k, v in seconds.items()}
        print(f"{what}, {len(inputs)} pages, innertext, medians of {args.rounds}: this {m['this']:.3f} s, "
              f"other {m['other']:.3f} s (this checkout {m['other'] / max(m['this'], 1e-9):.2f}x as fast)")
    return {"pages": len(pages), "differ": differ, "seconds": medians["render"], "parse_seconds": medians["parse + render"]}


if __name__ == "__main__":
    main()
