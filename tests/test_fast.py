"""The fast tier (pagesieve/fast.py): a tiny page transformer trained on the test pages."""
import json

import numpy as np
import pytest

from conftest import DATA, ROOT

TINY = {"hidden": 32, "layers": 1, "heads": 2, "ff": 64, "dropout": 0.0, "line_tokens": 8, "max_lines": 16,
        "overlap_lines": 4}


@pytest.fixture(scope="module")
def fast_dir(tmp_path_factory):
    from pagesieve import fast

    out = tmp_path_factory.mktemp("fast")
    cfg = fast.FastTrainConfig(train=[str(DATA / "pages.jsonl")], validation=[str(DATA / "pages.jsonl")],
                               model=TINY, epochs=30, batch_lines=64, lr=3e-3, out=str(out / "run"),
                               release=str(out / "release"))
    result = fast.train(cfg)
    return out / "release", result


def test_training_learns_the_pages(fast_dir):
    _, result = fast_dir
    first, best = result["history"][0]["val_macro_f1"], result["best_validation_macro_f1"]
    assert best > first and best > 0.6, result["history"][-1]  # the pages it trained on: it must fit them


def test_predictor_loads_the_fast_tier_and_labels_every_line(fast_dir):
    from pagesieve import Predictor, fast

    folder, _ = fast_dir
    assert fast.is_fast_dir(folder) and json.loads((folder / "config.json").read_text())["pagesieve_arch"] == "line-page"
    p = Predictor.from_pretrained(folder)
    assert isinstance(p, fast.FastPredictor)
    lines = ["Home", "", "News", "A headline of the piece", "The body of the piece goes on.", "Subscribe"]
    out = p.predict(lines)
    assert [r.index for r in out] == [0, 2, 3, 4, 5]
    assert all(abs(sum(r.probs.values()) - 1) < 1e-3 for r in out)
    with pytest.raises(ValueError, match="torch only"):
        Predictor.from_pretrained(folder, runtime="onnx-int8")


def test_labels_do_not_depend_on_batch_or_window_neighbours(fast_dir, test_pages):
    from pagesieve import Predictor

    p = Predictor.from_pretrained(fast_dir[0])
    long_page = [l for page in test_pages[:4] for l in page["lines"]]  # 76 lines: windows of 16 lines
    pages = [long_page] + [t["lines"] for t in test_pages]
    together = [probs for _, probs in p.line_probs(pages, batch_size=5)]
    alone = [p.line_probs([page], batch_size=1)[0][1] for page in pages]
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert len(together[0]) == len(long_page)


@pytest.mark.parametrize("line_vectors", [{}, {"max_pool": True}, {"token_conv": 8, "token_conv_layers": 2},
                                          {"token_conv": 8, "conv_ends": True}])
def test_packed_forward_is_the_padded_forward(line_vectors):
    """Inference packs pages without padding (attention per page); training pads them to one width: the
    same logits, whole pages and windows of their lines alike."""
    import torch
    from pagesieve import fast
    from pagesieve.encoding import N_FEATURES, EncodedLines

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = fast.FastConfig(**TINY, **line_vectors)
    model = fast.LinePageModel(cfg, torch.randn(50, cfg.word_dim)).eval()
    pages = []
    for n in (1, 5, 16, 3, 30):
        tokens = [rng.integers(0, 50, rng.integers(1, 9)).tolist() for _ in range(n)]
        pages.append(EncodedLines(n, list(range(n)), tokens, rng.random((n, N_FEATURES), dtype=np.float32)))
    spans = [(0, 1), (0, 5), (2, 14), (0, 3), (10, 26)]
    with torch.no_grad():
        padded_inputs, _ = fast.collate(pages, spans)
        padded = model(**padded_inputs)[padded_inputs["mask"]]
        packed = model.forward_packed(**fast.packed(pages, spans))
    assert packed.shape == (sum(e - s for s, e in spans), len(fast.LABELS))
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-5)
    model.page.layers[0].self_attn.in_proj_bias.data += 1  # the check can fail: another model differs
    with torch.no_grad():
        assert not torch.allclose(model.forward_packed(**fast.packed(pages, spans)), padded, atol=1e-3)


def test_max_pool_line_vectors(tmp_path):
    """With `max_pool` a line's vector also holds the elementwise max of its word vectors, and the setting is
    saved; without it the saved config has no such key, as the fast tier 0.4.0's has none (its dumps' identity)."""
    import torch
    from pagesieve import fast

    words = torch.tensor([[1.0, -2.0], [3.0, 0.0], [-1.0, 5.0]])
    cfg = fast.FastConfig(**dict(TINY, word_dim=2), max_pool=True)
    model = fast.LinePageModel(cfg, words)
    ids, offsets = torch.tensor([0, 1, 2, 2]), torch.tensor([0, 3])
    v = model.line_vectors(ids, offsets, torch.tensor([0, 2]), torch.tensor([2, 2]))
    torch.testing.assert_close(v, torch.tensor([[1.0, 1.0, 3.0, 5.0, 1.0, -2.0, -1.0, 5.0],
                                                [-1.0, 5.0, -1.0, 5.0, -1.0, 5.0, -1.0, 5.0]]))
    assert json.loads((fast.save(model, tmp_path / "max") / "config.json").read_text())["fast"]["max_pool"] is True
    mean = fast.LinePageModel(fast.FastConfig(**dict(TINY, word_dim=2)), words)
    assert "max_pool" not in json.loads((fast.save(mean, tmp_path / "mean") / "config.json").read_text())["fast"]
    released = json.loads((ROOT / "model" / "fast" / "config.json").read_text())["fast"]
    assert fast.config_dict(fast.FastConfig(**released)) == released  # its identity, whichever the setting


def test_bf16_runtime(fast_dir, test_pages, monkeypatch):
    """torch-bf16 computes in bfloat16 (close to fp32, its own identity for resuming dumps); auto takes it
    where the hardware does it natively; the ONNX runtimes are refused with the ones the tier has."""
    import torch
    from pagesieve import Predictor, fast
    from pagesieve.dump import model_identity

    folder = fast_dir[0]
    pages = [t["lines"] for t in test_pages]
    fp32 = Predictor.from_pretrained(folder, runtime="torch")
    bf16 = Predictor.from_pretrained(folder, runtime="torch-bf16")
    assert (fp32.compute_dtype, bf16.compute_dtype) == (torch.float32, torch.bfloat16)
    for (_, a), (_, b) in zip(fp32.line_probs(pages), bf16.line_probs(pages)):
        np.testing.assert_allclose(a, b, atol=0.05)
    assert model_identity(fp32)["runtime"] != model_identity(bf16)["runtime"]
    for native, runtime in ((True, "torch-bf16"), (False, "torch")):
        monkeypatch.setattr(fast, "native_bf16", lambda device: native)
        assert Predictor.from_pretrained(folder, runtime="auto").runtime == runtime
    monkeypatch.setattr(fast, "load", lambda folder: pytest.fail("loaded before the runtime was checked"))
    with pytest.raises(ValueError, match="torch-bf16"):
        Predictor.from_pretrained(folder, runtime="onnx")


def test_prepare_the_fast_tier(fast_dir, capsys):
    """Nothing to export for the torch runtimes; an ONNX runtime is one line saying the tier runs torch."""
    from pagesieve.cli import main

    for runtime in ("all", "torch", "torch-bf16"):
        assert main(["prepare", "--model", str(fast_dir[0]), "--runtime", runtime]) == 0
    assert "onnx" not in capsys.readouterr().out
    assert main(["prepare", "--model", str(fast_dir[0]), "--runtime", "onnx-int8"]) != 0
    assert "runs with torch only" in capsys.readouterr().err


def test_saved_and_loaded_models_agree(fast_dir, tmp_path, test_pages):
    from pagesieve import fast

    m = fast.load(fast_dir[0])
    fast.save(m, tmp_path / "again")
    again = fast.load(tmp_path / "again")
    for (a_name, a), (b_name, b) in zip(m.state_dict().items(), again.state_dict().items()):
        assert a_name == b_name and np.array_equal(a.numpy(), b.numpy())
    assert "words" not in m.state_dict()  # the word table is read from the backbone, not stored


def test_line_spans_cover_every_line_once_or_more():
    from pagesieve.fast import line_spans

    for n in (0, 1, 15, 16, 17, 40, 1000):
        spans = line_spans(n, 16, 4)
        covered = set()
        for s, e in spans:
            assert 0 <= s < e <= n or n == 0 and (s, e) == (0, 0)
            covered |= set(range(s, e))
        assert covered == set(range(n))


def test_train_py_dispatches_on_arch(tmp_path):
    from pagesieve.training import _arch

    cfg = tmp_path / "c.yaml"
    cfg.write_text("arch: line-page\nepochs: 1\n")
    assert _arch(str(cfg), []) == "line-page"
    assert _arch(None, ["arch=line-page"]) == "line-page"
    assert _arch(None, []) == ""


def test_class_counts_are_the_regex_counts_of_each_text():
    """The page-at-once counts through the code-point table equal each class's regex matches, text by text:
    astral characters, lone surrogates, empty texts and characters of every class included."""
    import regex

    from pagesieve.encoding import CHAR_CLASSES, class_counts

    texts = ["", "Hello, World! 2024", "𝐀𝐁𝐂 ١٢٣ ǅ Ⅻ ⅻ", "\ud800 lone", "«Привет», — сказал он.", "", "x" * 1000, "日本語。"]
    expected = [[len(regex.findall(p, t)) for p in CHAR_CLASSES] for t in texts]
    assert class_counts(texts).tolist() == expected
    assert class_counts([]).shape == (0, len(CHAR_CLASSES))
    assert expected[2][0] >= 4 and expected[4][3] == 5  # the texts exercise the classes: the check can fail


@pytest.mark.parametrize("conv_ends", [False, True])
def test_token_convolution_sees_its_own_line_only(tmp_path, conv_ends):
    """With `token_conv` (and `conv_ends`: the convolved first and last token instead of their word vectors), a
    line's vector depends on the order of its own tokens but not on its neighbour lines' tokens (the convolution
    runs over the flat token stream of the batch); the settings are saved."""
    import torch
    from pagesieve import fast

    torch.manual_seed(0)
    cfg = fast.FastConfig(**TINY, token_conv=4, token_conv_layers=2, conv_ends=conv_ends)
    model = fast.LinePageModel(cfg, torch.randn(20, cfg.word_dim)).eval()

    def vectors(lines):
        offsets = np.cumsum([0] + [len(t) for t in lines[:-1]]).tolist()
        ids = [i for t in lines for i in t]
        with torch.no_grad():
            return model.line_vectors(torch.tensor(ids), torch.tensor(offsets), torch.tensor([t[0] for t in lines]),
                                      torch.tensor([t[-1] for t in lines]))

    alone = vectors([[3, 4, 5, 6]])[0]
    torch.testing.assert_close(vectors([[1, 2], [3, 4, 5, 6], [7]])[1], alone)
    torch.testing.assert_close(vectors([[7], [3, 4, 5, 6], [8, 9, 10]])[1], alone)
    assert not torch.allclose(vectors([[3, 5, 4, 6]])[0], alone)  # the same tokens, first and last; another order
    saved = json.loads((fast.save(model, tmp_path / "conv") / "config.json").read_text())["fast"]
    assert saved["token_conv"] == 4 and saved["token_conv_layers"] == 2 and saved.get("conv_ends", False) == conv_ends
    assert ("conv_ends" in saved) == conv_ends  # off: left out, so configs without it keep their identity
    assert fast.config_dict(fast.load(tmp_path / "conv").cfg) == saved
    assert len(alone) == (1 if conv_ends else 3) * cfg.word_dim + (4 if conv_ends else 2) * 4
    with pytest.raises(ValueError, match="set token_conv"):
        fast.LinePageModel(fast.FastConfig(**TINY, conv_ends=True), torch.randn(20, cfg.word_dim))


def test_pages_from_a_worker_process_batch_alike():
    """A page pickled to the dump's main process travels as flat arrays without its lists of ids, which it reads
    back from them when asked (the cascade's base model does): the same ids, line by line and sliced, and the same
    model inputs."""
    import pickle

    import torch
    from pagesieve import fast
    from pagesieve.encoding import N_FEATURES, EncodedLines

    rng = np.random.default_rng(0)
    pages = []
    for n in (1, 7, 0, 12):
        tokens = [rng.integers(0, 50, rng.integers(1, 9)).tolist() for _ in range(n)]
        pages.append(EncodedLines(n, list(range(n)), tokens, rng.random((n, N_FEATURES), dtype=np.float32)))
        pages[-1].flat_tokens()  # as LineEncoder.encode_many does
    back = pickle.loads(pickle.dumps(pages))
    for page, page_back in zip(pages, back):
        assert len(page_back.tokens) == len(page.tokens) and list(page_back.tokens) == page.tokens
        assert page_back.tokens[2:5] == page.tokens[2:5] and page_back.tokens[::-2] == page.tokens[::-2]
        if page.tokens:
            assert page_back.tokens[-1] == page.tokens[-1] and type(page_back.tokens[0][0]) is int
        with pytest.raises(IndexError):
            page_back.tokens[len(page.tokens)]
    spans = [(0, 1), (2, 7), (0, 0), (3, 12)]
    for key, value in fast.packed(pages, spans).items():
        again = fast.packed(back, spans)[key]
        assert again == value if key == "lengths" else torch.equal(again, value), key
    assert pickle.loads(pickle.dumps(EncodedLines(1, [0], [[5, 6]], np.zeros((1, N_FEATURES))))).tokens == [[5, 6]]
