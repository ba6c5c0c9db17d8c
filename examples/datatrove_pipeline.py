"""Filter a JSONL dump of page text with datatrove + pagesieve, locally (for HTML in WARC files:
datatrove_local.py; on clusters: datatrove_slurm.py, datatrove_ray.py).

    pip install -e ".[datatrove]"
    python examples/datatrove_pipeline.py INPUT_FOLDER OUTPUT_FOLDER [--tasks 2] [--keep content] [--min-line-share 0.3]

INPUT_FOLDER holds *.jsonl(.gz) records with a `text` field (one page, lines split by newlines).
OUTPUT_FOLDER/kept gets the documents with only their kept lines and the per-line labels in
metadata["pagesieve_labels"]; OUTPUT_FOLDER/excluded the documents dropped (nothing kept, or under
--min-line-share of their lines kept), whole, with metadata["filter_reason"].
"""
import argparse

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from pagesieve.datatrove_step import PagesieveFilter

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--tasks", type=int, default=1)
    ap.add_argument("--keep", default="content", help="labels to keep, comma-separated")
    ap.add_argument("--min-line-share", type=float, default=0.0, help="drop pages with less of their lines kept")
    ap.add_argument("--model", help="model folder (default: the released model)")
    args = ap.parse_args()
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(args.input),
            PagesieveFilter(args.model, keep=tuple(args.keep.split(",")), min_line_share=args.min_line_share,
                            exclusion_writer=JsonlWriter(f"{args.output}/excluded")),
            JsonlWriter(f"{args.output}/kept"),
        ],
        tasks=args.tasks,
        logging_dir=f"{args.output}/.logs",
    ).run()
