"""Build the weakly labeled training dataset from HTML corpora (see data/README.md).

    python -m pagesieve.data build --out data/built [--corpora ../shared/data/corpora] [--seed 0]

Each record's HTML is rendered by one renderer picked at random (seeded by the page id),
each line labeled by `weak.label_lines`. Pages that are in the gold dev set are left out;
pages in the gold train set keep their gold labels (and get one more rendering whose
lines take the gold label of the gold line they match). The output is a `datasets`
DatasetDict (train / validation, split by site), a data card `README.md`, `rejects.jsonl`
(id and reason of every page that could not be used) and `agreement.json` (weak labels
against the gold dev labels).
"""
from __future__ import annotations

import collections
import difflib
import gzip
import hashlib
import json
import random
import sys
import time
from multiprocessing import Pool
from pathlib import Path

from ..labels import LABELS
from .pages import read_pages, site_of
from .weak import label_lines, norm

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DEFAULT_CORPORA = SHARED / "corpora"
DEFAULT_GOLD_DEV = SHARED / "gold" / "dev.jsonl"
DEFAULT_GOLD_TRAIN = SHARED / "gold" / "train.jsonl"
PROJECT_GOLD = Path(__file__).resolve().parents[2] / "data" / "gold"  # the project's own gold (line hashes)
MAX_HTML = 5_000_000  # bytes; larger pages are rejected (they are not web pages we can learn from)


def iter_records(corpora: Path):
    files = sorted(corpora.glob("*.jsonl.gz")) + sorted(corpora.glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"{corpora}: no *.jsonl.gz corpus files")
    for f in files:
        opener = gzip.open if f.suffix == ".gz" else open
        with opener(f, "rt", encoding="utf-8", errors="replace") as fh:
            for n, raw in enumerate(fh, 1):
                try:
                    rec = json.loads(raw)
                except json.JSONDecodeError as e:
                    yield {"_reject": f"{f.name}:{n}", "_why": f"bad JSON ({e.msg})"}
                    continue
                rec.setdefault("corpus", f.name.split(".")[0])
                yield rec


def pick_renderer(page_id: str, seed: int, exclude: str | None = None) -> str:
    from ..html import RENDERERS

    choices = [r for r in RENDERERS if r != exclude]
    h = int(hashlib.sha1(f"{seed}:{page_id}".encode()).hexdigest(), 16)
    # innertext (what browsers and the gold pages give) half the time, the others the rest
    weights = [2 if r == "innertext" else 1 for r in choices]
    return random.Random(h).choices(choices, weights)[0]


def align(lines_a: list[str], lines_b: list[str]) -> dict[int, int]:
    """Map line index in a -> line index in b for lines with equal normalised text, in order."""
    na, nb = [norm(x) for x in lines_a], [norm(x) for x in lines_b]
    sm = difflib.SequenceMatcher(None, na, nb, autojunk=False)
    out = {}
    for block in sm.get_matching_blocks():
        for k in range(block.size):
            out[block.a + k] = block.b + k
    return out


def transfer_gold(lines: list[str], gold: dict) -> list[str | None]:
    """Gold labels for another rendering of a gold page: by aligned line, else by containment."""
    m = align(lines, gold["lines"])
    gnorm = [norm(g) for g in gold["lines"]]
    out = []
    for i, line in enumerate(lines):
        if i in m:
            out.append(gold["labels"][m[i]])
            continue
        t = norm(line)
        labs = {gold["labels"][j] for j, g in enumerate(gnorm) if g and len(g) >= 8 and g in t}
        out.append(labs.pop() if len(labs) == 1 else None)
    return out


def process(args):
    """One corpus record -> (pages, reject or None). Runs in worker processes."""
    from ..html import parse, render

    rec, seed, gold = args
    pid = rec.get("id") or "?"
    html = rec.get("html")
    if not isinstance(html, str) or not html.strip():
        return [], (pid, "no HTML")
    if len(html) > MAX_HTML:
        return [], (pid, f"HTML larger than {MAX_HTML} bytes")
    if "<" not in html[:2000]:
        return [], (pid, "not HTML (no markup at the start)")
    try:
        root = parse(html)
    except ValueError as e:
        return [], (pid, str(e))
    meta = {k: rec.get(k) for k in ("url", "lang", "corpus", "page_type")}
    pages = []
    if gold is not None:  # gold labels replace weak ones; add one other rendering of the page
        pages.append(dict(id=pid, lines=gold["lines"], labels=gold["labels"],
                          renderer=gold.get("renderer") or "chromium-innertext",
                          evidence=["gold"] * len(gold["lines"]), **meta))
        style = pick_renderer(pid, seed, exclude="innertext")
        lines = [l.text for l in render(root, style)]
        labels = transfer_gold(lines, gold)
        if lines:
            pages.append(dict(id=f"{pid}#{style}", lines=lines, labels=labels, renderer=style,
                              evidence=["gold:aligned" if l else "none" for l in labels], **meta))
        return pages, None
    style = pick_renderer(pid, seed)
    lines = render(root, style)
    if not lines:
        return [], (pid, "no text after rendering")
    labeled = label_lines(lines, rec)
    if not any(lab for lab, _ in labeled):
        return [], (pid, "no line could be labeled")
    pages.append(dict(id=pid, lines=[l.text for l in lines], labels=[lab for lab, _ in labeled], renderer=style,
                      evidence=[ev for _, ev in labeled], **meta))
    return pages, None


def agreement(records_by_id: dict, gold_dev: list[dict]) -> dict:
    """Weak labels (innertext rendering) against gold dev labels, on aligned lines."""
    from ..html import render
    from ..metrics import scores

    g_all, w_all, aligned, total, unknown = [], [], 0, 0, 0
    by_ev = collections.Counter()
    for page in gold_dev:
        rec = records_by_id.get(page["id"])
        total += len(page["lines"])
        if rec is None:
            continue
        try:
            lines = render(rec.get("html") or "", "innertext")
        except ValueError:
            continue
        labeled = label_lines(lines, rec)
        m = align([l.text for l in lines], page["lines"])
        for i, j in m.items():
            aligned += 1
            lab, ev = labeled[i]
            if lab is None:
                unknown += 1
                continue
            g_all.append(LABELS.index(page["labels"][j]))
            w_all.append(LABELS.index(lab))
            kind = ev.split(":")[0] + ":" + (ev.split(".")[-1] if ev.startswith("dom:") and "." in ev else ev.split(":")[-1])
            by_ev[(kind, lab == page["labels"][j])] += 1
    s = scores(g_all, w_all)
    s.update(gold_lines=total, aligned_lines=aligned, labeled_lines=len(g_all), unknown_lines=unknown,
             evidence_precision={k: f"{by_ev[(k, True)] / (by_ev[(k, True)] + by_ev[(k, False)]):.2f} "
                                    f"({by_ev[(k, True)] + by_ev[(k, False)]})" for k in sorted({k for k, _ in by_ev})})
    return s


def build(out: Path, corpora: Path = DEFAULT_CORPORA, gold_train: Path | list | None = DEFAULT_GOLD_TRAIN,
          gold_dev: Path | None = DEFAULT_GOLD_DEV, seed: int = 0, validation_fraction: float = 0.05,
          workers: int = 2, limit: int = 0, hold_out_validation_sites: bool = True) -> dict:
    """`gold_train`: one or more labeled-page files whose labels replace weak ones. Records on the
    sites that the gold validation draws from (`annotate.site_split`) are never built, so a model
    is chosen on sites it has not seen, annotated yet or not."""
    from .annotate import site_split

    from datasets import Dataset, DatasetDict, Features, Sequence, Value
    from tqdm import tqdm

    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    dev = list(read_pages(gold_dev)) if gold_dev and Path(gold_dev).exists() else []
    dev_ids = {p["id"] for p in dev}
    gold_files = [gold_train] if isinstance(gold_train, (str, Path)) else list(gold_train or [])
    gold = {p["id"]: p for f in gold_files if Path(f).exists() for p in read_pages(f)}
    shared_train_sites = {site_of(p) for p in read_pages(DEFAULT_GOLD_TRAIN)} if DEFAULT_GOLD_TRAIN.exists() else set()
    rejects, pages, dev_records, train_records = [], [], {}, {}
    n_held = 0

    def jobs():
        nonlocal n_held
        n = 0
        for rec in iter_records(corpora):
            if "_reject" in rec:
                rejects.append({"id": rec["_reject"], "reason": rec["_why"]})
                continue
            if rec.get("id") in dev_ids:  # never train on the measuring pages
                dev_records[rec["id"]] = rec
                continue
            if hold_out_validation_sites and rec.get("id") not in gold and \
                    site_split(site_of(rec), rec.get("lang"), shared_train_sites) == "validation":
                n_held += 1
                continue
            n += 1
            if limit and n > limit:
                return
            if rec.get("id") in gold:
                train_records[rec["id"]] = rec
            yield rec, seed, gold.get(rec.get("id"))

    with Pool(workers) if workers > 1 else _Serial() as pool:
        for got, reject in tqdm(pool.imap(process, jobs(), chunksize=4), desc="build", unit="page"):
            pages.extend(got)
            if reject:
                rejects.append({"id": reject[0], "reason": reject[1]})

    sites = sorted({site_of(p) for p in pages})
    random.Random(seed).shuffle(sites)
    held = set(sites[: int(round(len(sites) * validation_fraction))])
    features = Features({
        "id": Value("string"), "url": Value("string"), "lang": Value("string"), "corpus": Value("string"),
        "page_type": Value("string"), "renderer": Value("string"), "site": Value("string"),
        "lines": Sequence(Value("string")), "labels": Sequence(Value("string")), "evidence": Sequence(Value("string"))})
    for p in pages:
        p["site"] = site_of(p)
    split = {"train": [p for p in pages if p["site"] not in held],
             "validation": [p for p in pages if p["site"] in held]}
    dd = DatasetDict({k: Dataset.from_list([{f: p.get(f) for f in features} for p in v], features=features)
                      for k, v in split.items()})
    dd.save_to_disk(str(out / "dataset"))
    with open(out / "rejects.jsonl", "w") as fh:
        for r in rejects:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    agree = {"dev": agreement(dev_records, dev) if dev else {},
             "train": agreement(train_records, list(gold.values())) if gold else {}}
    (out / "agreement.json").write_text(json.dumps(agree, indent=1))
    stats = card(out, split, rejects, agree, seed, time.time() - t0)
    print(f"pagesieve data: {sum(len(v) for v in split.values())} pages in {out / 'dataset'}; "
          f"{len(rejects)} rejected; {n_held} on held-out sites left out; {time.time() - t0:.0f} s", file=sys.stderr)
    return stats


class _Serial:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    @staticmethod
    def imap(fn, it, chunksize=1):
        return map(fn, it)


def card(out: Path, split: dict, rejects: list, agree: dict, seed: int, seconds: float) -> dict:
    def table(rows, header):
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
        return "\n".join(lines)

    all_pages = [p for v in split.values() for p in v]
    labels = collections.Counter(l or "unknown" for p in all_pages for l in p["labels"])
    by_lang = collections.defaultdict(collections.Counter)
    by_corpus = collections.defaultdict(collections.Counter)
    renderers = collections.Counter(p["renderer"] for p in all_pages)
    for p in all_pages:
        by_lang[p.get("lang") or "unknown"]["pages"] += 1
        by_corpus[p.get("corpus") or "?"]["pages"] += 1
        for l in p["labels"]:
            by_lang[p.get("lang") or "unknown"][l or "unknown"] += 1
            by_corpus[p.get("corpus") or "?"][l or "unknown"] += 1
    cols = list(LABELS) + ["unknown"]
    text = [f"# Data card: weakly labeled pages (seed {seed})", "",
            "Built by `python -m pagesieve.data build` from the HTML corpora (see `data/README.md`).",
            f"Pages: {len(all_pages)} (train {len(split['train'])}, validation {len(split['validation'])}, split by site); "
            f"lines: {sum(labels.values())}; rejected records: {len(rejects)}; build time {seconds:.0f} s.", "",
            "Labels (`unknown`: no evidence; ignored in training):", "",
            table([[k, labels[k]] for k in cols], ["label", "lines"]), "",
            "Renderers: " + ", ".join(f"{k} {v}" for k, v in renderers.most_common()), "",
            "## Per corpus", "", table([[c, n["pages"]] + [n[k] for k in cols] for c, n in sorted(by_corpus.items())],
                                       ["corpus", "pages"] + cols), "",
            "## Per language", "", table([[c, n["pages"]] + [n[k] for k in cols]
                                         for c, n in sorted(by_lang.items(), key=lambda x: -x[1]["pages"])],
                                        ["lang", "pages"] + cols), ""]
    for which, a in agree.items():
        if not a:
            continue
        text += [f"## Weak labels against the gold {which} pages", "",
                 f"Innertext rendering of each gold {which} page's HTML, lines aligned to the gold lines by text; "
                 f"{a['aligned_lines']} of {a['gold_lines']} gold lines aligned, {a['labeled_lines']} "
                 f"got a weak label ({a['unknown_lines']} unknown).", "",
                 table([[k, a[k]["precision"], a[k]["recall"], a[k]["f1"], a[k]["support"]] for k in LABELS],
                       ["class", "precision", "recall", "F1", "gold lines"]), "",
                 f"Macro-F1 {a['macro_f1']}, accuracy {a['accuracy']} (labeled lines only).", "",
                 "Precision by evidence (lines): " + ", ".join(f"{k} {v}" for k, v in a["evidence_precision"].items()), ""]
    (out / "README.md").write_text("\n".join(text))
    return {"pages": len(all_pages), "labels": dict(labels), "agreement": agree}


def main(argv=None):
    import argparse

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["annotate"]:
        from .annotate import main as annotate_main

        return annotate_main(argv[1:])

    ap = argparse.ArgumentParser(prog="python -m pagesieve.data", description="Build training data from HTML corpora.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("annotate", help="gold labels from annotators (python -m pagesieve.data annotate --help)")
    b = sub.add_parser("build", help="render + weakly label the corpora into a datasets DatasetDict with a data card")
    b.add_argument("--out", required=True, type=Path, help="output folder (dataset/, README.md, rejects.jsonl)")
    b.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA, help="folder of corpus *.jsonl.gz files")
    b.add_argument("--gold-train", type=Path, nargs="+", default=[DEFAULT_GOLD_TRAIN, PROJECT_GOLD / "train.jsonl.gz"],
                   help="gold pages whose labels replace weak ones (default: the shared and the project's gold train)")
    b.add_argument("--keep-validation-sites", action="store_true",
                   help="also build the pages of the gold validation sites (by default they are left out)")
    b.add_argument("--gold-dev", type=Path, default=DEFAULT_GOLD_DEV, help="gold pages to measure against (never built)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--validation-fraction", type=float, default=0.05, help="share of sites held out")
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--limit", type=int, default=0, help="only the first N records (0: all)")
    e = sub.add_parser("export", help="write a built dataset split as JSONL(.gz) labeled pages")
    e.add_argument("dataset", type=Path)
    e.add_argument("out", type=Path)
    e.add_argument("--split", default="train")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        if not args.corpora.exists():
            ap.error(f"{args.corpora}: no such folder (pass --corpora)")
        build(args.out, args.corpora, args.gold_train, args.gold_dev, args.seed, args.validation_fraction,
              args.workers, args.limit, not args.keep_validation_sites)
    else:
        from .pages import write_pages

        n = write_pages(read_pages(args.dataset, split=args.split), args.out)
        print(f"{n} pages written to {args.out}", file=sys.stderr)
