"""`cambrian model ...`: inspect presets, build and save a model folder, generate from one."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Build, inspect and run Cambrian models.")


@app.command()
def info(spec: str = typer.Argument(..., help="preset name (cambrian-tiny, cambrian-nano, cambrian-8b, ...)")) -> None:
    """Towers, grids, connector shape and parameter counts, built on the meta device (no weights, no download)."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from cambrian.models.modeling import CambrianForCausalLM
    from cambrian.models.presets import get_preset

    config = get_preset(spec)
    if config.text_config is None:  # presets that take their LLM architecture from real weights
        from transformers import AutoConfig

        from cambrian.models.llm import resolve_llm_folder

        config.text_config = AutoConfig.from_pretrained(
            resolve_llm_folder(config.llm_config.name_or_path, config.llm_config.gguf_file)
        )
    with torch.device("meta"):
        model = CambrianForCausalLM(config)

    def count(module) -> str:
        return f"{sum(p.numel() for p in module.parameters()) / 1e6:,.1f}M"

    table = Table(title=f"{spec}")
    for column in ("part", "detail", "parameters"):
        table.add_column(column)
    for k, tower in enumerate(model.towers):
        detail = f"{tower.config.image_size}px -> {tower.grid_size}x{tower.grid_size}x{tower.hidden_size}"
        table.add_row(f"tower {k}: {tower.name}", detail + (" (trainable)" if tower.trainable else ""), count(tower))
    connector = config.connector_config
    if connector.type == "sva":
        c = model.connector
        shape = f"L={connector.query_side} G={connector.num_groups} D={connector.depth} width={connector.hidden_size}"
        table.add_row("SVA tower projectors", "", count(c.tower_projectors))
        table.add_row("SVA samplers", shape + f" m_k={c.window_sides}", count(c.samplers))
        table.add_row("SVA in-LLM blocks", f"after decoder layers {model.in_llm_layers}", count(c.llm_layers))
        table.add_row("projector to LLM", "", count(c.projector))
    else:
        table.add_row("MLP projector", f"L={connector.query_side}", count(model.connector))
    table.add_row(
        "LLM",
        f"{config.text_config.model_type}, {config.text_config.num_hidden_layers} layers",
        count(model.language_model),
    )
    Console().print(table)


@app.command()
def build(
    spec: str = typer.Argument(..., help="preset name"),
    out: Path = typer.Option(..., help="folder to write (safetensors + config + tokenizer)"),
) -> None:
    """Build a preset with its real weights (LLM, pretrained towers) and save it as a model folder."""
    from cambrian.models.builder import build_model, save_model

    model, tokenizer = build_model(spec)
    save_model(model, tokenizer, out)
    typer.echo(f"saved {spec} to {out}")


@app.command()
def generate(
    prompt: str = typer.Argument(..., help="the question"),
    model: str = typer.Option("cambrian-nano", help="model folder or preset name"),
    image: list[Path] = typer.Option([], help="image file(s); each becomes one <image> in the prompt"),
    max_new_tokens: int = typer.Option(64),
) -> None:
    """One greedy answer, streamed to the terminal."""
    from PIL import Image
    from transformers import TextStreamer

    from cambrian.constants import IMAGE_TOKEN
    from cambrian.models.builder import build_model

    cambrian, tokenizer = build_model(model)
    cambrian.eval()
    images = [Image.open(path).convert("RGB") for path in image]
    if images and IMAGE_TOKEN not in prompt:
        prompt = "\n".join([IMAGE_TOKEN] * len(images)) + "\n" + prompt
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    input_ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    inputs = {"input_ids": input_ids.to(cambrian.device), **cambrian.image_inputs(images)}
    streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    cambrian.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, streamer=streamer)
