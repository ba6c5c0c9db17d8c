"""How the datatrove figures in README.md and the examples were measured (needs ../shared/data/corpora).

    python examples/datatrove_figures.py [--pages 100] [--threads 1]

1. Charsets: the corpus pages that declare a non-UTF-8 charset in <meta>, re-encoded in it and written
   to a WARC as text/html without a charset: how many datatrove's WarcReader and PagesieveWarcReader read,
   and how many they decode to the page's text.
2. One task of datatrove_local.py's pipeline (released model, --runtime auto) on a WARC of --pages
   corpus pages (in UTF-8): CPU time, peak RSS, pages and lines per CPU-second.
"""
import argparse
import gzip
import io
import json
import resource
import sys
import tempfile
import time
import types
from pathlib import Path

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpora"


def corpus_pages():
    for path in sorted(CORPORA.glob("*.jsonl.gz")):
        for line in gzip.open(path, "rt"):
            page = json.loads(line)
            if page.get("html"):
                yield page


def write_warc(path, pages):
    """(url, body bytes, Content-Type) -> a WARC of response records."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        for url, body, ctype in pages:
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http))


def charsets(folder: Path):
    from datatrove.pipeline.readers import WarcReader

    from pagesieve.datatrove_step import PagesieveWarcReader
    from pagesieve.html import _meta_charset

    pages, truth = [], {}
    for page in corpus_pages():
        codec = _meta_charset(page["html"][:4096].encode("utf-8", "replace"))
        try:
            body = page["html"].encode(codec) if codec and not codec.startswith("utf") else b""
        except UnicodeEncodeError:
            continue
        if not body.isascii():
            url = f"https://example.com/{len(pages)}"
            pages.append((url, body, "text/html"))
            truth[url] = page["html"]
    (folder / "charsets").mkdir()
    write_warc(folder / "charsets" / "a.warc.gz", pages)
    for reader in (WarcReader, PagesieveWarcReader):
        docs = list(reader(str(folder / "charsets")).run())
        right = sum(doc.text == truth[doc.metadata["url"]] for doc in docs)
        print(f"{reader.__name__}: {len(docs)} of {len(pages)} pages read, {right} decoded right")


def one_task(folder: Path, n: int, threads: int):
    from datatrove.executor import LocalPipelineExecutor

    sys.path.insert(0, str(Path(__file__).parent))
    from datatrove_local import pipeline

    pages = [(page.get("url") or f"https://example.com/{i}", page["html"].encode("utf-8", "surrogatepass"),
              "text/html; charset=utf-8") for i, page in zip(range(n), corpus_pages())]
    (folder / "in").mkdir()
    write_warc(folder / "in" / "a.warc.gz", pages)
    args = types.SimpleNamespace(input=str(folder / "in"), output=str(folder / "out"), keep="content", model=None,
                                 runtime="auto")
    start, wall = resource.getrusage(resource.RUSAGE_SELF), time.time()
    LocalPipelineExecutor(pipeline(args, threads), tasks=1, logging_dir=str(folder / "out" / ".logs")).run()
    end, wall = resource.getrusage(resource.RUSAGE_SELF), time.time() - wall
    cpu = end.ru_utime - start.ru_utime + end.ru_stime - start.ru_stime
    stats = json.loads(next((folder / "out" / ".logs" / "stats").glob("*.json")).read_text())[1]["stats"]
    lines = sum(stats.get(f"lines_{label}", 0) for label in ("content", "caption", "navigation", "ui_chrome"))
    print(f"one task, {threads} thread(s): {n} pages, {lines} lines in {wall:.1f} s, {cpu:.1f} CPU-s: "
          f"{n / cpu:.2f} pages, {lines / cpu:.0f} lines per CPU-second; peak RSS {end.ru_maxrss / 2**20:.2f} GB")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        charsets(Path(tmp))
        one_task(Path(tmp), args.pages, args.threads)
