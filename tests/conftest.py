import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the random-init `cambrian-tiny` preset, built once per session."""
    import torch

    from cambrian.models.builder import build_model

    torch.manual_seed(0)
    model, tokenizer = build_model("cambrian-tiny")
    return model.eval(), tokenizer


@pytest.fixture(scope="session")
def write_tiny_cvbench():
    """write(path, rows) -> a CV-Bench folder of Depth questions ("traffic cone" or "sofa"), one per (image colour,
    answer letter) row, each image a plain 16 x 16 square of that colour."""
    import io

    from PIL import Image

    from cambrian.cvbench.layout import CVBenchRecord, format_prompt, write_cvbench

    def write(path, rows: list[tuple[tuple[int, int, int], str]]):
        records, choices, question = [], ["traffic cone", "sofa"], "Which is closer?"
        for idx, (colour, letter) in enumerate(rows):
            buffer = io.BytesIO()
            Image.new("RGB", (16, 16), colour).save(buffer, format="PNG")
            records.append(CVBenchRecord(idx=idx, type="3D", task="Depth", question=question, choices=choices,
                                         answer=f"({letter})", prompt=format_prompt(question, choices),
                                         filename=f"img/3D/depth/{idx}.png", source="Omni3D", source_dataset="Omni3D",
                                         source_filename=f"{idx}.jpg", image_bytes=buffer.getvalue()))
        return write_cvbench(path, records)

    return write
