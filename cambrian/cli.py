"""The one `cambrian` command. Each area contributes a Typer sub-app from its own `cli.py`.

Sub-app modules import nothing heavy at module level (torch, transformers, ...), so `cambrian --help` is instant.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Cambrian-1: vision-centric multimodal LLMs.")

# name -> module holding `app` (a typer.Typer) or `register(app)`; each area owns its module.
SUBCOMMANDS = {
    "model": "cambrian.models.cli",
    "data": "cambrian.data.cli",
    "cvbench": "cambrian.cvbench.cli",
    "train": "cambrian.train.cli",
    "eval": "cambrian.eval.cli",
    "analyze": "cambrian.eval.analyze_cli",
    "quickstart": "cambrian.quickstart",
    "chat": "cambrian.serve.cli",
}


def _install_subcommands() -> None:
    for name, module_name in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is None or not module_name.startswith(error.name):  # a missing dependency: surface it
                raise
            continue  # area not built yet
        if hasattr(module, "register"):
            module.register(app)
        else:
            app.add_typer(module.app, name=name)


_install_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
