"""The kept text of the HTML pages of WARC files, with datatrove and pagesieve on a Ray cluster.

    pip install -e ".[datatrove]" ray
    python examples/datatrove_ray.py WARC_FOLDER OUTPUT_FOLDER --tasks 1000 [--cpus 2] [--keep content]

Joins the cluster that RAY_ADDRESS (or `ray start` on this machine) names, else starts a local one.
The pipeline and outputs are those of datatrove_local.py; on a cluster, WARC_FOLDER and OUTPUT_FOLDER
must be seen by every node (shared disk, s3://...). Each task reserves --cpus CPUs and --mem-gb of
memory: one task's peak RSS is 1.33 GB (the model, onnx-int8) and it labels ~540 lines per CPU-second
(datatrove_local.py says how that was measured).
"""
from datatrove_local import arguments, pipeline


def main(argv=None):
    import ray
    from datatrove.executor.ray import RayPipelineExecutor

    ap = arguments(__doc__)
    ap.add_argument("--cpus", type=int, default=2, help="CPUs per task (the model's threads)")
    ap.add_argument("--mem-gb", type=float, default=2.0, help="memory reserved per task")
    args = ap.parse_args(argv)
    started = not ray.is_initialized()
    if started:
        ray.init()  # RAY_ADDRESS, a local `ray start`, or a new local cluster
    try:
        RayPipelineExecutor(pipeline=pipeline(args, threads=args.cpus), tasks=args.tasks, cpus_per_task=args.cpus,
                            mem_per_cpu_gb=args.mem_gb / args.cpus, logging_dir=f"{args.output}/.logs").run()
    finally:
        if started:
            ray.shutdown()


if __name__ == "__main__":
    main()
