"""The quickstart report: report.json (everything measured), report.md (for people), PNG plots (loss curves,
accuracy per task with the vision-off and random-guess baselines, test images with question / answer / truth)."""

from __future__ import annotations

import json
import math
from pathlib import Path

# easy-VQA's yes/no questions that name the image's own colour or shape (eval.benchmarks.vision.easyvqa_named), as the
# evaluation's flattened metrics name them
NAMED_PRESENT = "yes_no_named/present"


def _plots(report: dict, out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    files = {}
    fig, ax = plt.subplots(figsize=(8, 4))
    offset = 0
    for stage in report["training"]["stages"]:
        steps = [offset + s for s in stage["steps"]]
        ax.plot(steps, stage["loss"], label=stage["name"], lw=1)
        offset += len(stage["steps"])
    ax.set_xlabel("step (both stages)")
    ax.set_ylabel("loss (supervised tokens)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Training loss")
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=110)
    plt.close(fig)
    files["loss"] = "loss.png"

    rows = []
    for bench, entry in report["evaluation"].items():
        rows.append((f"{bench}", entry["vision_on"], entry["vision_off"], entry["random"]))
        on, off, rnd = entry["vision_on_metrics"], entry["vision_off_metrics"], entry["random_metrics"]
        for key in on:
            table, _, name = key.partition("/")
            if table in ("per_category", "per_task") or key == NAMED_PRESENT:
                label = "yes/no, own word named" if table == "yes_no_named" else name
                rows.append((f"{bench}: {label}", on[key], off.get(key, 0), rnd.get(key, 0)))
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.9), 4.5))
    width = 0.27
    for j, (label, color) in enumerate((("vision on", "tab:blue"), ("vision off", "tab:orange"),
                                        ("random guess", "tab:gray"))):
        ax.bar([i + (j - 1) * width for i in range(len(rows))], [r[j + 1] for r in rows], width,
               label=label, color=color)
    ax.set_xticks(range(len(rows)), [r[0] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.set_title("Accuracy per benchmark and task")
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=110)
    plt.close(fig)
    files["accuracy"] = "accuracy.png"

    examples = report["examples"]
    if examples:
        fig, axes = plt.subplots(1, len(examples), figsize=(4 * len(examples), 4.8))
        for ax, ex in zip(list(getattr(axes, "flat", [axes])), examples, strict=False):
            ax.imshow(Image.open(ex["image"]).convert("RGB"))
            ax.axis("off")
            text = f"Q: {ex['question']}\nA: {ex['answer'][:80]}\ntruth: {ex['truth']}"
            ax.set_title(text, fontsize=7, loc="left", wrap=True)
        fig.tight_layout()
        fig.savefig(out / "examples.png", dpi=110)
        plt.close(fig)
        files["examples"] = "examples.png"
    return files


def _pct(x) -> str:
    return "-" if x is None else f"{x:.1f}%"  # the harness reports percentages


def named_yes_no(entry: dict) -> str | None:
    """easy-VQA's yes/no questions that name the image's own colour or shape (eval.benchmarks.vision.easyvqa_named):
    the ones a model that assumes "absent" gets wrong; None where the evaluation has no such split."""
    key = NAMED_PRESENT
    if key not in entry.get("vision_on_metrics", {}):
        return None
    n = entry["vision_on_metrics"].get("yes_no_named_n/present", 0)
    total = n + entry["vision_on_metrics"].get("yes_no_named_n/absent", 0)
    return (f"yes/no questions that name the image's own colour or shape: vision on "
            f"{_pct(entry['vision_on_metrics'][key])}, off {_pct(entry.get('vision_off_metrics', {}).get(key))}, "
            f"random {_pct(entry['random_metrics'].get(key))} (n={n:.0f} of {total:.0f}; the other {total - n:.0f} "
            "name an absent one, which a model that always assumes \"absent\" gets right without looking)")


def markdown(report: dict) -> str:
    lines = ["# cambrian quickstart report", "",
             f"Wall time: {report['wall_seconds']:.0f} s (budget {report['budget_seconds']:.0f} s) on "
             + (f"{report['cpu_threads']} CPU thread(s)" if report.get("device", "cpu") == "cpu" else report["device"])
             + f", {report['training_compute']}"
             + (" — smoke run (tiny step counts; numbers mean nothing)" if report["smoke"] else ""), "",
             "## Model", "", report["model"]["summary"], "", f"Folder: `{report['model']['path']}`", "",
             "## Data", ""]
    for kind, n in report["data"]["counts"].items():
        lines.append(f"- {kind}: {n}")
    lines += ["", "## Training", "",
              "| stage | steps | batches per kind (in order of first use) | samples | seconds | first loss | "
              "last loss (mean of 5) |", "|---|---|---|---|---|---|---|"]
    notes = [f"- {note}" for note in report.get("notes", [])]  # run-level (quickstart.training_notes)
    for s in report["training"]["stages"]:
        finite = [x for x in s["loss"] if math.isfinite(x)]
        last = sum(finite[-5:]) / max(1, len(finite[-5:]))
        first = s["loss"][0] if s["loss"] else float("nan")
        seconds = s["seconds"][-1] if s["seconds"] else 0
        kinds = ", ".join(f"{k} {s['kind'].count(k)}" for k in dict.fromkeys(s["kind"]))
        lines.append(f"| {s['name']} | {len(s['steps'])} | {kinds} | {s['samples']} | {seconds:.0f} | {first:.3f} | "
                     f"{last:.3f} |")
        skipped = s.get("skipped", [])
        if skipped:
            notes.append(f"- {s['name']}: {len(skipped)} step(s) not applied (non-finite loss or gradient), first at "
                         f"step {skipped[0]['step']} ({skipped[0]['kind']} batch); all in report.json")
        if s.get("stopped"):
            notes.append(f"- {s['name']} stopped early: {s['stopped']}")
    lines += [""] + notes if notes else []
    spread = report["training"].get("visual_token_spread", {})
    if spread:
        lines += ["", "Visual-token spread across 8 test images (across-image std / overall std; near 0 means every "
                  "image gives the LLM the same tokens): " + ", ".join(f"{k} {v:.3f}" for k, v in spread.items())]
    lines += ["", "![loss](loss.png)", "", "## Evaluation (held-out test sets)", "",
              "| benchmark | n | vision on | vision off | random guess |", "|---|---|---|---|---|"]
    for bench, e in report["evaluation"].items():
        lines.append(f"| {bench} | {e['n']} | {_pct(e['vision_on'])} | {_pct(e['vision_off'])} | {_pct(e['random'])} |")
    if line := named_yes_no(report["evaluation"].get("easyvqa", {})):
        lines += ["", f"easy-VQA {line}."]
    lines += ["", "![accuracy](accuracy.png)", "", "## Examples (test images)", ""]
    for ex in report["examples"]:
        lines += [f"**Q:** {ex['question']}  ", f"**A:** {ex['answer']}  ", f"**truth:** {ex['truth']}  ",
                  f"(`{ex['image']}`)", ""]
    lines += ["![examples](examples.png)", "", "## Targets", ""]
    for name, t in report["targets"].items():
        lines.append(f"- {name}: {t['value']} — {'met' if t['met'] else 'NOT met'}")
    lines += ["", "## Chat", "", f"```\n{report['chat_command']}\n```", ""]
    return "\n".join(lines)


def write_report(report: dict, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    report["plots"] = _plots(report, out)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "report.md").write_text(markdown(report))
    return {"json": out / "report.json", "markdown": out / "report.md",
            **{k: out / v for k, v in report["plots"].items()}}
