"""Clean a JSONL dump with datatrove + pagesieve, locally (swap in SlurmPipelineExecutor or
RayPipelineExecutor to scale out).

    pip install datatrove orjson
    python examples/datatrove_pipeline.py INPUT_FOLDER OUTPUT_FOLDER [--tasks 2]

INPUT_FOLDER holds *.jsonl(.gz) records with a `text` field (one page, lines split by newlines).
OUTPUT_FOLDER gets the same documents with only their content lines, and the per-line labels in
metadata["pagesieve_labels"].
"""
import argparse

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from pagesieve.datatrove_step import PagesieveLabeler

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--tasks", type=int, default=1)
    ap.add_argument("--keep", default="content", help="labels to keep, comma-separated")
    ap.add_argument("--model", help="model folder (default: the released model)")
    args = ap.parse_args()
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(args.input),
            PagesieveLabeler(model=args.model, keep=tuple(args.keep.split(","))),
            JsonlWriter(args.output),
        ],
        tasks=args.tasks,
        logging_dir=f"{args.output}/.logs",
    ).run()
