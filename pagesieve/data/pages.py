"""Labeled pages in the format of ../shared/LABELS.md:
`{"id", "lang", "lines": [...], "labels": [...]}` one JSON object per line, optional
`url`, `source`, `renderer`, `weight`. A page may give `line_hashes` instead of `lines` (the
project's own gold in data/gold/, which holds no page text): its lines are then rendered again
from the HTML corpora (see `annotate.resolve`).

`read_pages` accepts a JSONL(.gz) file, a directory of them, or a saved Hugging Face
`datasets` dataset (a folder with `dataset_info.json` / `dataset_dict.json`).
"""
from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from ..labels import LABELS


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8", errors="replace") if path.suffix == ".gz" else \
        open(path, encoding="utf-8", errors="replace")


def check_page(page: dict) -> str | None:
    """Why a labeled page is unusable, or None."""
    if not isinstance(page, dict):
        return "not a JSON object"
    lines, labels = page.get("lines", page.get("line_hashes")), page.get("labels")
    if not isinstance(lines, list) or not isinstance(labels, list):
        return "needs 'lines' and 'labels' lists"
    if len(lines) != len(labels):
        return f"{len(lines)} lines but {len(labels)} labels"
    bad = {l for l in labels if l is not None and l not in LABELS}  # None: unknown (weak data)
    if bad:
        return f"unknown labels {sorted(map(str, bad))[:3]}"
    return None


def read_pages(source: str | Path, split: str = "train", strict: bool = False) -> Iterator[dict]:
    """Yield labeled pages; a bad record is reported on stderr and skipped (or raised if strict)."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists()):
        from datasets import DatasetDict, load_from_disk

        ds = load_from_disk(str(path))
        if isinstance(ds, DatasetDict):
            if split not in ds:
                raise KeyError(f"{path}: no split {split!r} (has {', '.join(ds)})")
            ds = ds[split]
        yield from (dict(row) for row in ds)
        return
    files = sorted(p for p in path.rglob("*") if p.name.endswith((".jsonl", ".jsonl.gz"))) if path.is_dir() else [path]
    for f in files:
        hash_only = []  # gold stored as line hashes (data/gold/): lines re-rendered from the corpora
        with _open(f) as fh:
            for n, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    page = json.loads(raw)
                    why = check_page(page)
                except json.JSONDecodeError as e:
                    why = f"bad JSON ({e.msg})"
                if why:
                    msg = f"{f}:{n}: skipped: {why}"
                    if strict:
                        raise ValueError(msg)
                    print(msg, file=sys.stderr)
                    continue
                if "lines" not in page:
                    hash_only.append(page)
                    continue
                yield page
        if hash_only:
            from .annotate import resolve

            yield from resolve(hash_only, where=str(f))


def write_pages(pages, path: str | Path) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as fh:
        for page in pages:
            fh.write(json.dumps(page, ensure_ascii=False) + "\n")
            n += 1
    return n


def site_of(page: dict) -> str:
    """The site a page belongs to (its host without www.), for splitting by site."""
    url = page.get("url") or ""
    host = urlparse(url).netloc.lower() if url else ""
    if host:
        return re.sub(r"^(www\d?|m|amp)\.", "", host.split(":")[0])
    pid = str(page.get("id", ""))
    return re.sub(r"[_\-.]?\d[\d_\-.]*$", "", pid)  # e.g. fundus/us/Reuters_2023_05_16 -> fundus/us/Reuters
