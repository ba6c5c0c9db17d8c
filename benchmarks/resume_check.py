"""Kill-and-resume check of `pagesieve predict` at scale, with the released model.

    python benchmarks/resume_check.py                      # 100,000 records, killed halfway
    python benchmarks/resume_check.py --records 20000 --kill-after 40
    python benchmarks/resume_check.py --records 20000 --model cascade   # another tier (or any model folder)

Writes a JSONL dump of short pages (English, Russian, Arabic lines around menu lines) with ~2%
injected bad records (bad JSON, bad UTF-8, no text field, empty page, blank line, non-object),
runs `pagesieve predict` on it once uninterrupted, then once killed with SIGKILL after
`--kill-after` seconds (default: half the uninterrupted run's time) and restarted with the same
command, and checks that the two outputs are byte-identical with one record per input record. A run
that finishes before its kill fails the check: nothing was interrupted. Prints times, peak memory
and the error counts.
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = {"en": "the weather report says rain will reach the coast by evening and winds".split(),
         "ru": "погода завтра будет дождливой на побережье ожидается сильный ветер".split(),
         "ar": "قال المتحدث إن الحكومة ستعلن عن خطة جديدة للاقتصاد هذا الأسبوع".split()}
MENU = ["Home", "News", "Sport", "Главная", "Новости", "الرئيسية", "Subscribe", "Log in", "© 2026 Example"]
BAD = [b"{bad json\n", b'{"id": "x", "text": "caf\xe9"}\n', b'{"id": "x", "body": "no text"}\n',
       b'{"id": "x", "text": " \\n "}\n', b"\n", b"[1, 2]\n"]


def write_dump(path: Path, n: int, seed: int = 1) -> int:
    rng, bad = random.Random(seed), 0
    with open(path, "wb") as f:
        for i in range(n):
            if rng.random() < 0.02:
                f.write(rng.choice(BAD))
                bad += 1
                continue
            words = WORDS[rng.choice(list(WORDS))]
            body = [" ".join(rng.choices(words, k=rng.randint(4, 12))) for _ in range(rng.randint(1, 4))]
            lines = rng.sample(MENU, 3) + body + rng.sample(MENU, 2)
            f.write(json.dumps({"id": f"r{i}", "text": "\n".join(lines)}, ensure_ascii=False).encode() + b"\n")
    return bad


def predict(src: Path, out: Path, model: str | None, kill_after: float | None = None) -> tuple[float, bool]:
    """(seconds, whether the run was killed) of one `pagesieve predict` run."""
    cmd = [sys.executable, "-m", "pagesieve", "predict", str(src), "-o", str(out)] + (["--model", model] if model else [])
    start = time.time()
    try:  # on timeout, subprocess kills the run with SIGKILL, like a crash
        done = subprocess.run(cmd, timeout=kill_after, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except subprocess.TimeoutExpired:
        print(f"  killed after {kill_after:.0f} s")
        return time.time() - start, True
    if done.returncode:
        sys.exit(f"predict failed:\n{done.stderr[-2000:]}")
    print("  " + next((l for l in done.stderr.splitlines() if l.startswith("pagesieve predict:")), "(no summary)"))
    return time.time() - start, False


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--model", help="--model of `pagesieve predict` (default: the released model)")
    ap.add_argument("--kill-after", type=float, default=None,
                    help="seconds before the second run is killed (default: half the first run's time)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "dump.jsonl"
        bad = write_dump(src, args.records)
        print(f"{args.records} records, {bad} bad ones injected")
        whole, _ = predict(src, tmp / "a.jsonl", args.model)
        print(f"uninterrupted: {whole:.0f} s")
        _, killed = predict(src, tmp / "b.jsonl", args.model, kill_after=args.kill_after or whole / 2)
        if not killed:
            sys.exit("the second run finished before it was killed: nothing was interrupted, give a smaller --kill-after")
        print(f"restarted: {predict(src, tmp / 'b.jsonl', args.model)[0]:.0f} s to finish")
        a, b = (tmp / "a.jsonl").read_bytes(), (tmp / "b.jsonl").read_bytes()
        records = [json.loads(line) for line in a.splitlines()]
        errors = sum("error" in r for r in records)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"records out: {len(records)} (error records: {errors}); peak RSS of a run: {peak:.0f} MB")
        ok = a == b and len(records) == args.records and errors == bad
        print("byte-identical after kill and restart" if a == b else "OUTPUTS DIFFER")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
