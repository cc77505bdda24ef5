"""FAQ bot: fine-tune the last decoder layers of the packaged base chat model on a few chat examples.

Everything but the last ``--layers`` decoder layers and the final norm stays frozen; the loss is taken on the
assistant's tokens only (the prompt, built with the model's chat template, is labelled -100, which the causal-LM
loss ignores). Full-batch AdamW, seeded, so the same data and arguments give the same weights. The saved MLflow
model carries only the trained parameters (``training.chat.model.save_chat_model``); ``--steps 0`` saves the base
model unchanged.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import mlflow
import torch

from training.chat import base
from training.chat.model import DEFAULT_MAX_NEW_TOKENS, save_chat_model


def read_examples(path: str) -> list[list[dict[str, str]]]:
    """The conversations in a chat JSONL file; SystemExit names the line that is not one."""
    out = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            messages = json.loads(line)["messages"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise SystemExit(f"{path} line {number}: not a JSON object with 'messages' ({exc})") from exc
        if not isinstance(messages, list) or not any(isinstance(m, dict) and m.get("role") == "assistant"
                                                     for m in messages):
            raise SystemExit(f"{path} line {number}: 'messages' needs at least one assistant message")
        out.append(messages)
    if not out:
        raise SystemExit(f"{path}: no examples")
    return out


def _ids(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=True,
                                            return_dict=True)
    return list(encoded["input_ids"])


def encode(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Token ids of the whole conversation and their labels: each assistant message's tokens (its end-of-turn
    token included), -100 everywhere else."""
    ids = _ids(tokenizer, messages, False)
    labels = [-100] * len(ids)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start, end = len(_ids(tokenizer, messages[:i], True)), len(_ids(tokenizer, messages[:i + 1], False))
        # the template renders each turn on its own, so a conversation's prefix encodes to a prefix of its ids;
        # if a template ever broke that, the labels would be misplaced: fail rather than train on the wrong tokens
        if ids[:start] != _ids(tokenizer, messages[:i], True):
            raise SystemExit("the chat template does not render a conversation's prefix as a prefix of its tokens")
        labels[start:end] = ids[start:end]
    return ids, labels


def batch(tokenizer: Any, examples: list[list[dict[str, str]]]) -> dict[str, torch.Tensor]:
    """All examples in one right-padded batch (the padding is masked and labelled -100)."""
    encoded = [encode(tokenizer, messages) for messages in examples]
    width = max(len(ids) for ids, _ in encoded)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return {
        "input_ids": torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in encoded]),
        "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in encoded]),
        "labels": torch.tensor([labels + [-100] * (width - len(labels)) for _, labels in encoded]),
    }


def trainable(model: Any, layers: int) -> list[str]:
    """Freeze the model but its last ``layers`` decoder layers and its final norm; the names of what trains."""
    count = len(model.model.layers)
    if not 0 <= layers <= count:
        raise SystemExit(f"--layers must lie in 0..{count}, not {layers}")
    prefixes = tuple(f"model.layers.{i}." for i in range(count - layers, count)) + ("model.norm.",)
    names = []
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith(prefixes))
        if parameter.requires_grad:
            names.append(name)
    return names


def tuned_layers(names: list[str]) -> list[str]:
    """The layers the trained parameters belong to (``model.layers.28``, ``model.norm``)."""
    return sorted({".".join(n.split(".")[:3]) if n.startswith("model.layers.") else n.rsplit(".", 1)[0]
                   for n in names})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--training_data", required=True)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max_new_tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    parser.add_argument("--model_dir", required=True)
    args = parser.parse_args()
    if args.steps < 0:
        raise SystemExit(f"--steps must be 0 or more, not {args.steps}")

    examples = read_examples(args.training_data)
    torch.manual_seed(args.seed)
    torch.set_num_threads(base.torch_threads())  # $OMP_NUM_THREADS, else two
    tokenizer, model = base.load_tokenizer(), base.load_model()
    names = trainable(model, args.layers) if args.steps > 0 else []
    settings = {"max_new_tokens": args.max_new_tokens, "base_sha256": base.base_sha256(), "base": base.BASE_NAME,
                "tuned": tuned_layers(names), "steps": args.steps,
                "learning_rate": args.learning_rate, "seed": args.seed, "examples": len(examples)}
    with mlflow.start_run():
        mlflow.log_params({k: settings[k] for k in ("steps", "learning_rate", "seed", "examples")} |
                          {"layers": args.layers, "base": base.BASE_NAME})
        tuned = None
        if args.steps > 0:
            data = batch(tokenizer, examples)
            parameters = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(parameters, lr=args.learning_rate, weight_decay=0.0)
            model.train()  # SmolLM2 has no dropout, so train mode changes nothing but intent
            started, loss = time.monotonic(), torch.tensor(float("nan"))
            for step in range(1, args.steps + 1):
                optimizer.zero_grad()
                loss = model(**data).loss
                loss.backward()
                optimizer.step()
                mlflow.log_metric("loss", loss.item(), step=step)
                if step == 1 or step % 5 == 0 or step == args.steps:
                    print(f"step {step}/{args.steps} loss {loss.item():.4f} "
                          f"({time.monotonic() - started:.1f} s)", flush=True)
            model.eval()
            with torch.no_grad():
                final = float(model(**data).loss)  # the loss of the weights that are saved
            mlflow.log_metric("train_loss", final)
            state = model.state_dict()
            tuned = {name: state[name] for name in names}
            print(f"trained {len(names)} tensors ({sum(t.numel() for t in tuned.values()):,} parameters) in "
                  f"{time.monotonic() - started:.1f} s; train_loss {final:.4f}", flush=True)
        save_chat_model(args.model_dir, tuned, settings)


if __name__ == "__main__":
    main()
