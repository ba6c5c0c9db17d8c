"""The kept text of the HTML pages of WARC files, with datatrove and pagesieve on this machine.

    pip install -e ".[datatrove]"
    python examples/datatrove_local.py WARC_FOLDER OUTPUT_FOLDER [--tasks 4] [--workers 2] [--keep content]

WARC_FOLDER holds *.warc.gz / *.warc files (Common Crawl WARCs, your own crawl); the tasks share them
out. OUTPUT_FOLDER/kept gets one .jsonl.gz per task: each page's kept lines in `text`, its url, date,
title and per-line labels in `metadata`; OUTPUT_FOLDER/excluded the pages dropped, with
`metadata["filter_reason"]`; OUTPUT_FOLDER/.logs the stats (a rerun skips the tasks that finished).

Per task (one model each; `python examples/datatrove_figures.py`: the released model, onnx-int8, one
thread, 100 pages of the project's corpora of 143 lines on average, on 2 cores shared with other work):
26 CPU-seconds, i.e. ~540 lines (3.8 such pages) per CPU-second; peak RSS 1.33 GB, whatever the
threads. So give a task 2 GB and as many cores as you like; --workers tasks run at once and share this
machine's cores. The first task on a machine also converts the model into ~/.cache/pagesieve (~15 s).
"""
import argparse
import os

from datatrove.pipeline.writers import JsonlWriter

from pagesieve.datatrove_step import PagesieveExtractor, PagesieveWarcReader


def pipeline(args, threads: int | None = None) -> list:
    """WARC -> HTML pages -> kept text, and the dropped pages to their own folder."""
    return [
        PagesieveWarcReader(args.input, glob_pattern="*.warc*"),
        PagesieveExtractor(args.model, keep=tuple(args.keep.split(",")), runtime=args.runtime, threads=threads,
                           exclusion_writer=JsonlWriter(f"{args.output}/excluded")),
        JsonlWriter(f"{args.output}/kept"),
    ]


def arguments(description: str) -> argparse.ArgumentParser:
    """The arguments every example takes."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="folder of WARC files (local, or any fsspec URL such as s3://)")
    ap.add_argument("output", help="output folder (local, or any fsspec URL)")
    ap.add_argument("--tasks", type=int, default=1, help="shards of the input")
    ap.add_argument("--keep", default="content", help="labels to keep, comma-separated")
    ap.add_argument("--model", help="model folder or Hub id (default: the released model)")
    ap.add_argument("--runtime", default="auto", help="auto (onnx-int8 on a CPU) | onnx | torch | ...")
    return ap


def main(argv=None):
    from datatrove.executor import LocalPipelineExecutor

    ap = arguments(__doc__)
    ap.add_argument("--workers", type=int, default=1, help="tasks run at once (each loads its own model)")
    args = ap.parse_args(argv)
    threads = max(1, len(os.sched_getaffinity(0)) // args.workers)  # the cores, shared among the workers
    LocalPipelineExecutor(pipeline=pipeline(args, threads), tasks=args.tasks, workers=args.workers,
                          logging_dir=f"{args.output}/.logs").run()


if __name__ == "__main__":
    main()
