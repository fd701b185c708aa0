"""`cambrian train CONFIG [--key=value ...]` and `cambrian train-convert CHECKPOINT OUT`.

Options are the fields of `TrainConfig` (cambrian/train/config.py), given in the YAML/JSON file or as overrides;
none is re-declared here. Under torchrun: `torchrun --nproc-per-node N -m cambrian.train CONFIG ...`.
"""

from __future__ import annotations

from pathlib import Path

import typer

OVERRIDES = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": ["-h", "--help"]}


def train_command(ctx: typer.Context, config: Path = typer.Argument(..., help="YAML or JSON training config")) -> None:
    """Train (stage 1 alignment or stage 2 instruction tuning). Extra --key=value pairs override config fields,
    e.g. --stage=2 --init_from=runs/tiny-stage1 --resume=auto --strategy=fsdp."""
    from cambrian.train.config import load_config
    from cambrian.train.loop import train

    try:
        train_config = load_config(config, list(ctx.args)).resolved()
    except (KeyError, ValueError, OSError) as error:  # a bad option or file: say which, without a traceback
        raise typer.BadParameter(error.args[0] if error.args else str(error)) from None
    result = train(train_config)
    if result["is_main"] and result["losses"]:
        print(f"done: {result['steps']} steps, loss {result['losses'][0]:.4f} -> {result['losses'][-1]:.4f}")


def convert_command(
    checkpoint: Path = typer.Argument(..., help="a step-XXXXXXXX checkpoint folder, or a run folder (newest)"),
    out: Path = typer.Argument(..., help="folder to write the full model (config, safetensors, tokenizer) to"),
) -> None:
    """Checkpoint -> a full model folder that CambrianForCausalLM.from_pretrained opens (LoRA merged)."""
    from cambrian.train.checkpoint import convert_checkpoint

    print(convert_checkpoint(checkpoint, out))


def register(app: typer.Typer) -> None:
    app.command("train", context_settings=OVERRIDES)(train_command)
    app.command("train-convert")(convert_command)


def main() -> None:
    app = typer.Typer(add_completion=False)
    app.command(context_settings=OVERRIDES)(train_command)
    app()


if __name__ == "__main__":
    main()
