"""The kept text of the HTML pages of WARC files, with datatrove and pagesieve on a Slurm cluster: one
array job, each array task a share of the WARC files.

    pip install -e ".[datatrove]"
    python examples/datatrove_slurm.py WARC_FOLDER OUTPUT_FOLDER --tasks 1000 --partition cpu [--time 4:00:00]

The pipeline and outputs are those of datatrove_local.py; WARC_FOLDER and OUTPUT_FOLDER must be seen
by every node (shared disk, s3://...). Each task asks for --cpus CPUs with 1 GB each: one task's peak
RSS is 1.33 GB (the model, onnx-int8) and it labels ~540 lines per CPU-second
(datatrove_local.py says how that was measured): size --time from that and your pages. Rerun the
same command after failures: finished tasks are skipped. Fill the caches once, on a filesystem every
node reads, before the job (README: "A cluster"):

    export PAGESIEVE_CACHE=/shared/pagesieve-cache   # in this shell (or --env-command): the tasks read it
    pagesieve prepare --runtime onnx-int8            # the runtime the tasks run (--runtime auto on a CPU)

and the tasks start at once. Without it, the tasks that start together on a cold cache still convert
the model only once: the first holds a lock file, the others wait for it.
"""
from datatrove_local import arguments, pipeline


def parse_args(argv=None):
    ap = arguments(__doc__)
    ap.add_argument("--partition", required=True)
    ap.add_argument("--time", default="4:00:00", help="time limit of each task")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs per task (the model's threads)")
    ap.add_argument("--workers", type=int, default=-1, help="tasks running at once (default: no limit)")
    ap.add_argument("--env-command", help="what activates the Python environment, e.g. 'source venv/bin/activate'")
    return ap.parse_args(argv)


def executor(args):
    from datatrove.executor.slurm import SlurmPipelineExecutor

    return SlurmPipelineExecutor(pipeline=pipeline(args, threads=args.cpus), tasks=args.tasks, time=args.time,
                                 partition=args.partition, cpus_per_task=args.cpus, mem_per_cpu_gb=1,
                                 workers=args.workers, env_command=args.env_command, job_name="pagesieve",
                                 logging_dir=f"{args.output}/.logs")


if __name__ == "__main__":
    executor(parse_args()).run()
