"""The `pagesieve` command: label, evaluate, train."""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from .labels import check_keep
from .text import HTML_SUFFIXES, UserError, read_input

COLOURS = {"content": "\033[32m", "caption": "\033[36m", "navigation": "\033[33m", "ui_chrome": "\033[35m"}
RESET = "\033[0m"


def parse_keep(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    try:
        return check_keep(v.strip() for v in value.split(",") if v.strip())
    except ValueError as e:
        raise UserError(f"--keep: {e}") from None


def parse_min_prob(values: list[str] | None) -> dict[str, float]:
    """--min-prob content=0.8[,caption=0.5] (the option may also be given again)."""
    from .predictor import check_min_prob

    thresholds = {}
    for item in (i.strip() for v in values or () for i in v.split(",")):
        if not item:
            continue
        label, _, value = item.partition("=")
        try:
            thresholds[label.strip()] = float(value)  # no "=": float("") fails too
        except ValueError:
            raise UserError(f"--min-prob: {item!r} is not LABEL=PROBABILITY, e.g. content=0.8") from None
    try:
        return check_min_prob(thresholds)
    except ValueError as e:
        raise UserError(f"--min-prob: {str(e).removeprefix('min_prob: ')}") from None


# what would start a Markdown block: a marker character, or the "1." / "1)" of an ordered list
_MARKDOWN_START = re.compile(r"^([#>*+=|`~<-]|\d{1,9}[.)](?=\s|$))")


def to_markdown(kept: list[tuple[str, str | None]], title: str | None = None) -> str:
    """Kept lines as Markdown: the title as `# `, each line (text, block) a heading ("h1".."h6"), a list
    item ("li") or a paragraph; blocks separated by blank lines, list items kept together. No line
    kept: nothing, not a title alone."""
    if not kept:
        return ""
    out, previous = [], None
    if title and kept[0][0].strip() != title:
        out.append(f"# {title}")
    for text, block in kept:
        if block == "li":
            line = f"- {text}"
        elif block:
            line = "#" * int(block[1]) + f" {text}"
        else:  # a paragraph that would read as Markdown syntax: its marker escaped ("\\#", "1\\."), its
            # indentation dropped (four spaces make a code block)
            line = _MARKDOWN_START.sub(lambda m: m[1][:-1] + "\\" + m[1][-1], text.lstrip())
        out.append(line if not out else ("\n" if block == previous == "li" else "\n\n") + line)
        previous = block
    return "".join(out) + "\n"


def cmd_label(args) -> int:
    from .predictor import HtmlPage, as_lines, html_page

    keep = parse_keep(args.keep) or (("content",) if args.format == "markdown" else None)
    min_prob = parse_min_prob(args.min_prob)
    is_html = args.html or (args.file.lower().endswith(HTML_SUFFIXES) and not args.text)
    text, warnings = read_input(args.file, html=is_html)
    for w in warnings:
        print(f"pagesieve: warning: {w}", file=sys.stderr)
    page = html_page(text, args.renderer) if is_html else HtmlPage(as_lines(text), None, [])
    if not any(l.strip() for l in page.lines):
        print("pagesieve: the page is empty: nothing to label", file=sys.stderr)
        return 0
    predictor = load_predictor(args)
    results = [r for r in predictor.predict(page.lines, min_prob=min_prob) if not keep or r.label in keep]
    out = sys.stdout
    if args.format == "markdown":
        if not results:
            print(f"pagesieve: no line labeled {' or '.join(keep)}: nothing to write", file=sys.stderr)
        out.write(to_markdown([(r.text, page.blocks[r.index] if page.blocks else None) for r in results], page.title))
        return 0
    colour = out.isatty() and not os.environ.get("NO_COLOR") and args.format == "text"
    for r in results:
        if args.format == "jsonl":
            out.write(json.dumps({"line": r.index, "label": r.label, "probs": r.probs, "text": r.text},
                                 ensure_ascii=False) + "\n")
        elif args.format == "tsv":
            out.write(f"{r.label}\t{r.probs[r.label]:.3f}\t{r.text}\n")
        elif keep:  # text with --keep: the kept text alone
            out.write(r.text + "\n")
        else:
            lab = f"{r.label:<10}"
            if colour:
                lab = COLOURS[r.label] + lab + RESET
            out.write(f"{lab}  {r.text}\n")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluation import format_reports, run

    if not Path(args.data).exists():
        raise UserError(f"{args.data}: no such file or folder")
    reports = run(args.model, args.data, args.baselines, Path(args.corpora) if args.corpora else None,
                  Path(args.out) if args.out else None, args.batch_size, args.device, args.runtime, args.compare)
    print(format_reports(reports))
    if args.out:
        print(f"\nreport.json and confusion.png written to {args.out}", file=sys.stderr)
    return 0


def cmd_predict(args) -> int:
    import torch

    from .dump import CORRUPT, NO_TEXT, Fields, Limits, WorkersFailed, predict_dump

    keep = parse_keep(args.keep)
    min_prob = parse_min_prob(args.min_prob)
    started = time.monotonic()
    if args.hf_dataset:
        args.inputs = list(args.inputs) + [args.hf_dataset]
        args.format = args.format or "hf"
    if not args.inputs:
        raise UserError("no input: give files, a directory or a glob, or --hf-dataset PATH")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        summary = predict_dump(
            args.inputs, args.output, model=args.model, device=args.device, fmt=args.format,
            fields=Fields(id=args.id_field, text=args.text_field, lines=args.lines_field, html=args.html_field),
            keep=keep, with_probs=args.probs, with_labels=not args.no_labels, with_lines=args.with_lines,
            keep_fields=args.keep_fields, renderer=args.renderer, hf_split=args.split,
            batch_size=args.batch_size, shard_size=args.shard_size, runtime=args.runtime, workers=args.workers,
            limits=Limits(args.max_record_bytes, args.max_line_bytes, args.max_lines), min_prob=min_prob)
    except ValueError as e:
        raise UserError(str(e)) from None
    except WorkersFailed as e:
        print(f"pagesieve predict: error: {e}", file=sys.stderr)
        return 1
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    except OSError as e:  # a full disk, an output folder gone or read-only...
        print(f"pagesieve predict: error: {e}. The finished shards are kept: fix this and rerun the same "
              "command to continue", file=sys.stderr)
        return 1
    errs = ", ".join(f"{k}: {v}" for k, v in sorted(summary["errors"].items())) or "none"
    print(f"pagesieve predict: {summary['records_in']} records in, {summary['records_out']} out; errors: {errs}",
          file=sys.stderr)
    n_lines = sum(summary["lines"].values())
    by_label = ", ".join(f"{label} {n:,} ({n / max(n_lines, 1):.1%})" for label, n in summary["lines"].items())
    where = "each output's .summary.json" if "outputs" in summary else f"{summary['output']}.summary.json"
    print(f"pagesieve predict: {n_lines:,} lines: {by_label}; {time.monotonic() - started:.1f} s (summary in {where})",
          file=sys.stderr)
    readable = summary["records_in"] - summary["errors"].get(CORRUPT, 0)  # a corrupt tail's record aside
    if readable and summary["errors"].get(NO_TEXT) == readable:
        print(f"pagesieve predict: warning: no record has a field {args.lines_field!r}, {args.text_field!r} or "
              f"{args.html_field!r}: name the field that holds the page with --text-field, --lines-field or "
              "--html-field", file=sys.stderr)
    if summary["errors"].get(CORRUPT):
        print(f"pagesieve predict: warning: input is truncated or corrupt: its readable records are in the "
              f'output, what is lost is {summary["errors"][CORRUPT]} error record(s) "{CORRUPT}" (exit code 1)',
              file=sys.stderr)
        return 1
    return 0


def cmd_train(args) -> int:
    from .training import main as train_main

    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    train_main(rest, prog="pagesieve train")
    return 0


def cmd_prepare(args) -> int:
    from . import cascade, fast, modeling
    from .backbone import ensure_backbone
    from .onnxrt import exported, fingerprint

    folder = modeling.resolve(args.model)  # a Hub id: downloaded into the Hugging Face cache
    if cascade.is_cascade_dir(folder):  # what it needs prepared is its base model's: the fast tier runs with torch
        try:
            folder = cascade.read_config(folder)["base"]
        except ValueError as e:
            raise UserError(str(e)) from None
    runtimes = ("onnx", "onnx-int8") if args.runtime == "all" else (args.runtime,)  # fp32 first: int8 reuses it
    if fast.is_fast_dir(folder):  # the fast tier runs with torch: nothing to export
        if args.runtime.startswith("onnx"):
            raise UserError(f"{folder}: the fast tier runs with torch only: nothing to export (--runtime torch)")
        model, runtimes = fast.load(folder), ()
    else:
        try:
            model = modeling.load(folder)
        except ValueError as e:  # not a pagesieve model
            raise UserError(str(e)) from None
    caches = [("backbone", ensure_backbone()), ("model", folder)]
    key = fingerprint(model) if any(r.startswith("onnx") for r in runtimes) else None  # once for both exports
    for runtime in runtimes:
        if runtime.startswith("onnx"):
            caches.append((runtime, exported(model, int8=runtime.endswith("int8"), key=key)))
    for what, path in caches:
        files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
        print(f"{what:<10} {sum(f.stat().st_size for f in files) / 2**20:8.1f} MiB  {path}")
    return 0


def cmd_export(args) -> int:
    from .modeling import export

    try:
        out = export(args.model, args.dir)
    except ValueError as e:
        raise UserError(str(e)) from None
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"pagesieve export: {out} ({size / 2**20:.0f} MiB): load it with transformers' "
          f"AutoModelForTokenClassification/AutoTokenizer.from_pretrained, or Predictor.from_pretrained",
          file=sys.stderr)
    return 0


def cmd_report(args) -> int:
    from . import report

    if Path(args.output).is_dir():  # found before the model runs
        raise UserError(f"{args.output}: is a directory (-o names the HTML file to write)")
    try:
        pages = report.read_inputs(args.inputs, gold=args.gold, renderer=args.renderer)
    except ValueError as e:
        raise UserError(str(e)) from None
    if any(p.labels is None for p in pages):
        report.label(pages, load_predictor(args))
    out = report.write(pages, args.output, title=f"pagesieve report: {', '.join(args.inputs)}")
    print(f"pagesieve report: {len(pages)} pages written to {out}", file=sys.stderr)
    return 0


def load_predictor(args):
    """The model of --model, --device and --runtime; one it cannot run is one line, not a traceback."""
    from .predictor import Predictor

    try:
        return Predictor.from_pretrained(args.model, device=args.device, runtime=args.runtime)
    except ValueError as e:  # not a pagesieve model; the fast tier with an ONNX runtime
        raise UserError(str(e)) from None


def add_min_prob(parser):
    parser.add_argument("--min-prob", action="append", metavar="LABEL=P[,LABEL=P]", help=(
        "per-class thresholds, e.g. content=0.8: a line whose most probable label is below its threshold "
        "takes the next most probable label that passes (labels without a threshold always pass); higher "
        "content thresholds trade recall for precision (README: measured on the dev pages)"))


def whole(minimum: int):
    """An argparse type: a whole number >= minimum (a bad one is the flag's error, exit 2, not a traceback)."""
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, not {n}")
        return n

    return parse


def add_batch_size(parser):
    parser.add_argument("--batch-size", type=whole(1), help=(
        "windows per torch forward pass (default 4 on CPU, 128 on GPU); ONNX Runtime runs each window alone, "
        "several at once, so that labels never depend on the batch. The fast tier and the cascade: pages per "
        "fast-tier pass (default 16 on CPU, 64 on GPU; a cascade's base model batches as it does alone)"))


def add_model_options(parser, runtime_default: str | None = "auto"):
    """--model; with a runtime_default, also --device and --runtime, for the commands that label
    (prepare and export, which label nothing, pass None)."""
    parser.add_argument("--model", help="model folder, Hugging Face Hub id org/name, `fast` (the released fast tier) "
                                        "or `cascade` (a fast model of its own on every line, then the base model on "
                                        "the lines it is unsure of); default: the released model")
    if runtime_default is None:
        return
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available, in bf16 there)")
    parser.add_argument("--runtime", default=runtime_default, type=runtime_arg, metavar="RUNTIME", help=(
        f"inference engine (default: {runtime_default}): torch (fp32), torch-int8 (torch dynamic quantization: "
        "faster, less accurate), torch-bf16 (the weights in bfloat16), onnx / onnx-int8 (ONNX Runtime; the model is "
        "exported once into the cache; int8 is the fastest on a CPU and about as accurate as fp32), auto (onnx-int8 "
        "on a CPU, torch on a GPU). The fast tier (--model fast) runs torch (fp32) or torch-bf16 (its matrix "
        "products in bfloat16, torch autocast); its auto is bf16 where the hardware does it natively (a CPU with "
        "AVX512-BF16 or AMX, an Ampere or newer GPU), else fp32. The cascade (--model cascade) gives the runtime to "
        "its base model, and to its fast tier when the fast tier has it (else auto), or takes one for each as "
        "FAST+BASE, e.g. torch+onnx-int8"))


def runtime_arg(value: str) -> str:
    """--runtime: one of onnxrt.RUNTIMES, or FAST+BASE for a cascade (checked here: a typo is one line)."""
    from .onnxrt import FAST_RUNTIMES, RUNTIMES, split_runtime

    fast, base = split_runtime(value)
    if fast in FAST_RUNTIMES and base in RUNTIMES:
        return value
    raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {', '.join(RUNTIMES)}; for a cascade "
                                     f"also FAST+BASE, FAST one of {', '.join(FAST_RUNTIMES)})")


def add_renderer(parser):
    from .html import RENDERERS

    parser.add_argument("--renderer", default="innertext", choices=RENDERERS, help=(
        "how HTML becomes lines: innertext (the default: like a browser's innerText), textcontent, or wet "
        "(like Common Crawl's WET text)"))


def check_device(name: str | None):
    """A --device this machine has (cpu, cuda, cuda:N); any other is one line, exit code 2."""
    if name is None:
        return
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:  # not a device name at all
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name}: not cpu, cuda or cuda:N (the devices pagesieve runs on)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available here (torch {torch.__version__}); use --device cpu "
                        "or leave --device out")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                        "numbered from 0")


def build_parser() -> argparse.ArgumentParser:
    from .data.build import DEFAULT_CORPORA
    from .dump import FORMATS as FORMATS_CHOICES, Limits

    ap = argparse.ArgumentParser(prog="pagesieve", description=(
        "Label every line of a scraped web page as content, caption, navigation or ui_chrome."))
    from . import __version__

    ap.add_argument("--version", action="version", version=f"pagesieve {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)

    lab = sub.add_parser("label", help="label the lines of one page (text or HTML)", description=(
        "Print each non-blank line of a page with its label. FILE is a text file (one line per line of the "
        "page), an HTML file (.html/.htm or --html), or - for standard input."))
    lab.add_argument("file", metavar="FILE|-")
    lab.add_argument("--format", choices=("text", "tsv", "jsonl", "markdown"), default="text",
                     help="text: label and line (coloured on a terminal), or with --keep the kept text alone; "
                          "tsv: label, probability, line; jsonl: one object per line with every class "
                          "probability; markdown: the kept text (--keep, default content) as Markdown: the HTML "
                          "title as `# `, headings and list items where the HTML has them, else paragraphs")
    lab.add_argument("--keep", metavar="LABELS", help="only the lines with these labels, e.g. content,caption "
                                                      "(with --format text: their text alone)")
    add_min_prob(lab)
    lab.add_argument("--html", action="store_true", help="the input is HTML: render it to lines first")
    lab.add_argument("--text", action="store_true", help="the input is text even if its name ends in .html")
    add_renderer(lab)
    add_model_options(lab)
    lab.set_defaults(fn=cmd_label)

    ev = sub.add_parser("evaluate", help="score a model (and baselines) on labeled pages", description=(
        "Per-class precision/recall/F1, macro-F1, accuracy, content precision/recall by characters, a "
        "per-language table and a confusion matrix, on labeled pages (JSONL in the LABELS.md format); "
        "for the model, a 90% page-bootstrap interval of its macro-F1."))
    add_model_options(ev, runtime_default="torch")
    ev.add_argument("--data", required=True, help="labeled pages: JSONL file, folder, or datasets folder")
    ev.add_argument("--baselines", action="store_true",
                    help="also score all-content, C4 line rules, jusText and (with the pages' HTML) trafilatura")
    ev.add_argument("--corpora", default=str(DEFAULT_CORPORA),
                    help="folder of corpus *.jsonl.gz holding the pages' HTML, for trafilatura")
    ev.add_argument("--compare", metavar="MODEL",
                    help="a second model folder scored on the same pages, with a paired page bootstrap of the "
                         "macro-F1 difference (is the gap larger than what the choice of pages explains?)")
    ev.add_argument("--out", help="folder for report.json and confusion.png")
    add_batch_size(ev)
    ev.set_defaults(fn=cmd_evaluate)

    pr = sub.add_parser("predict", help="label every record of dumps (JSONL, Parquet, WET/WARC, text, datasets)",
                        description=(
        "Label every record of one or more dumps and write one output record per input record, in order: "
        "{id, labels: [one per line, null for blank lines]} (+ probs, cleaned text, input fields on request), or "
        "{id, error} for a record that cannot be read. Work is saved in shards (OUTPUT.parts/): run the same "
        "command again after an interruption and it continues; the result is identical to an uninterrupted run."))
    pr.add_argument("inputs", nargs="*", metavar="INPUT",
                    help="files (.jsonl[.gz|.zst], .parquet, .wet[.gz], .warc[.gz], .txt, .html), or folders and quoted "
                         "globs: of dump files (each file read in its own format) or of pages (one page per file, "
                         ".html files rendered; hidden files left out)")
    pr.add_argument("-o", "--output", required=True,
                    help="output .jsonl, .jsonl.gz or .parquet file, or a directory (one output per input)")
    pr.add_argument("--format", choices=FORMATS_CHOICES, help="input format (default: from the file name)")
    pr.add_argument("--hf-dataset", metavar="PATH", help="a dataset saved with datasets' save_to_disk")
    pr.add_argument("--split", default="train", help="split of --hf-dataset (default: train)")
    pr.add_argument("--id-field", default="id", help="record field holding the id (default: id; else file:line)")
    pr.add_argument("--text-field", default="text", help="field with the page text, lines split on newlines (default: text)")
    pr.add_argument("--lines-field", default="lines", help="field with the page as a list of lines (default: lines)")
    pr.add_argument("--html-field", default="html", help="field with HTML, rendered to lines (default: html)")
    add_renderer(pr)
    pr.add_argument("--keep", metavar="LABELS", help="also write `text`: the lines with these labels, e.g. content,caption")
    add_min_prob(pr)
    pr.add_argument("--probs", action="store_true", help="also write the four class probabilities of each line")
    pr.add_argument("--no-labels", action="store_true", help="do not write per-line labels (with --keep: text only)")
    pr.add_argument("--with-lines", action="store_true", help="also write the input lines")
    pr.add_argument("--keep-fields", action="store_true", help="keep the input record's other fields")
    add_model_options(pr)
    add_batch_size(pr)
    pr.add_argument("--workers", type=whole(0), default=0,
                    help="processes that read, render HTML and tokenize while the model runs (default 0: one "
                         "background thread; processes pay off only with cores to spare beyond the model's, e.g. "
                         "feeding a GPU: on 2 cores they make every model slower)")
    pr.add_argument("--threads", type=whole(0), default=0, help="CPU threads for the model (default: all cores)")
    pr.add_argument("--shard-size", type=whole(1), default=1000, help="records per saved shard (the unit of resuming)")
    limits = Limits()
    pr.add_argument("--max-record-bytes", type=whole(1), default=limits.record_bytes, metavar="N",
                    help="a record (page text, HTML, body) over N bytes becomes an error record "
                         f"(default {limits.record_bytes})")
    pr.add_argument("--max-line-bytes", type=whole(1), default=limits.line_bytes, metavar="N",
                    help=f"a page with a line over N bytes becomes an error record (default {limits.line_bytes})")
    pr.add_argument("--max-lines", type=whole(1), default=limits.lines, metavar="N",
                    help=f"a page of more than N lines becomes an error record (default {limits.lines})")
    pr.set_defaults(fn=cmd_predict)

    pp = sub.add_parser("prepare", aliases=["download"], help="fill the caches once (before a cluster job)",
                        description=(
        "Convert the packaged backbone, get the model (a Hub id is downloaded into the Hugging Face cache) and "
        "export its ONNX graphs, each once, and print where each cache is and its size. Run it once where "
        "the jobs will read the caches (PAGESIEVE_CACHE, and HF_HOME for a Hub model, on a shared filesystem); "
        "processes that start together on a cold cache also do each step once, the others waiting for it."))
    add_model_options(pp, runtime_default=None)
    pp.add_argument("--runtime", default="all", choices=("onnx-int8", "onnx", "torch", "torch-bf16", "all"),
                    help="the runtimes the jobs will use: onnx-int8 and onnx export an ONNX graph each, torch and "
                         "torch-bf16 need only the backbone and the model (default: all; the fast tier: torch)")
    pp.set_defaults(fn=cmd_prepare)

    ex = sub.add_parser("export", help="write a self-contained Hugging Face folder of a model", description=(
        "Write a model as a standard Hugging Face folder: config.json (BertForTokenClassification, labels, "
        "pagesieve's line-encoding settings), model.safetensors with all weights in fp16 (the word table "
        "too), the tokenizer (tokenizer.json) and the model card. transformers' AutoModelForTokenClassification "
        "and AutoTokenizer load it alone (same logits as pagesieve); so does Predictor.from_pretrained, and it "
        "can be uploaded to the Hugging Face Hub as is."))
    ex.add_argument("dir", metavar="DIR", help="output folder (created; files of the same names are replaced)")
    add_model_options(ex, runtime_default=None)
    ex.set_defaults(fn=cmd_export)

    rp = sub.add_parser("report", help="an HTML page to look at labeled pages (and disagreements with gold)",
                        description=(
        "Write one self-contained HTML file showing each page's lines coloured by label and shaded by "
        "probability, with per-class counts; with --gold, the per-page accuracy and a filter for the lines "
        "where the model disagrees with the gold labels."))
    rp.add_argument("inputs", nargs="+", metavar="INPUT", help=(
        "labeled pages (.jsonl[.gz] or a folder of them, lines + labels), a `pagesieve predict` output made "
        "with --with-lines (and --probs for the shading), or plain pages (text or .html files: the model labels them)"))
    rp.add_argument("-o", "--output", required=True, help="the HTML file to write")
    rp.add_argument("--gold", action="store_true",
                    help="the labels in INPUT are gold: the model labels the lines again and the report shows "
                         "where it disagrees")
    add_renderer(rp)
    add_model_options(rp)
    rp.set_defaults(fn=cmd_report)

    tr = sub.add_parser("train", help="fine-tune a model (same as python train.py)", add_help=False)
    tr.add_argument("rest", nargs=argparse.REMAINDER)
    tr.set_defaults(fn=cmd_train)
    return ap


def passive_openmp():
    """Let torch's OpenMP threads sleep as soon as an operator ends, unless OMP_WAIT_POLICY is set already
    (it is read when torch loads, so only before that). By default they spin for a while after every
    operator, and in a dump that takes the cores from the thread that reads, renders and tokenizes the next
    pages: a fifth less CPU for the fast tier on 2 cores (CHANGELOG). A forward pass alone, with no such
    thread beside it, is slower with them sleeping, so only `predict` asks for it."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:  # all the rest (--help included) belongs to train.py's parser
        argv = ["train", "--", *argv[1:]]
    args = build_parser().parse_args(argv)
    if args.fn is cmd_predict:
        passive_openmp()  # before check_device, which may load torch
    try:
        check_device(getattr(args, "device", None))  # every command that runs a model, before it loads
        return args.fn(args)
    except UserError as e:
        print(f"pagesieve: error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"pagesieve: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except OSError as e:  # an unwritable output, a cache path that is a file...: one line, as predict's
        print(f"pagesieve: error: {e}", file=sys.stderr)
        return 1
    except ImportError as e:  # an optional extra that is not installed: say which
        from .extras import missing_extra_message

        message = missing_extra_message(e)
        if message is None:
            raise
        print(f"pagesieve: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.fn is cmd_predict:
            print("pagesieve predict: interrupted. The finished shards are kept: rerun the same command to continue",
                  file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
