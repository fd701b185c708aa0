"""`CambrianForCausalLM`: vision towers -> connector (SVA or MLP) -> any Hugging Face causal LM, unchanged.

Data flow (docs/architecture.md): each tower turns its pixels into a grid (B, h_k, w_k, C_k); the SVA aggregates the
grids into L x L visual tokens; each image's tokens (unpadded by aspect ratio, a newline closing every row) replace
its `<image>` placeholder; the LLM runs on the spliced embeddings. After decoder layers start + k * stride, a forward
hook (public PyTorch API; the LLM class is untouched) lets the k-th in-LLM SVA block update the hidden states at
that sample's image positions from the same tower windows. Only forwards that carry pixels (training, prefill) do
this; decode steps reuse the KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, GenerationMixin, PreTrainedModel

from cambrian.constants import IGNORE_INDEX
from cambrian.models.configuration import CambrianConfig
from cambrian.models.connectors.coordinate_readout import CoordinateReadout
from cambrian.models.connectors.mlp import MLPProjector
from cambrian.models.connectors.sva import SpatialVisionAggregator, VisionWindows
from cambrian.models.connectors.windows import unpadded_cells
from cambrian.models.image_tokens import (
    ImagePlaceholderError,
    check_placeholders,
    expand_placeholders,
    image_token_positions,
)
from cambrian.models.llm import decoder_layers
from cambrian.models.towers.preprocess import MultiTowerTransform
from cambrian.models.towers.registry import build_tower


@dataclass
class EncodedImages:
    tokens: list[torch.Tensor]  # per image (n_i, d_llm), row-major cells with a newline closing each row
    shapes: list[tuple[int, int]]  # per image (rows, cols) of kept cells
    vision: VisionWindows | None  # SVA windows for the in-LLM blocks
    cell_index: list[torch.Tensor]  # per image: L*L grid index of each kept cell, row-major

    @property
    def tokens_per_image(self) -> list[int]:
        return [len(t) for t in self.tokens]


@dataclass
class InLLMAggregation:
    """What the in-LLM SVA hooks read during one forward: where the image tokens are and which windows they see."""

    positions: torch.Tensor  # (N,) flat indices into (B * T) of image-token hidden states (newlines excluded)
    image_index: torch.Tensor  # (N,) which image each belongs to
    cell_index: torch.Tensor  # (N,) which of the L*L cells
    vision: VisionWindows


AGGREGATION_KWARG = "cambrian_aggregation"  # travels with the LLM call down to the decoder layers' hooks


class CambrianPreTrainedModel(PreTrainedModel):
    config_class = CambrianConfig
    base_model_prefix = "cambrian"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        # Connector modules keep PyTorch's default init (as released, official-cambrian.md 2.5); towers and the LLM
        # arrive initialised (or loaded) by their own libraries.
        pass


class CambrianForCausalLM(CambrianPreTrainedModel, GenerationMixin):
    def __init__(self, config: CambrianConfig):
        super().__init__(config)
        if config.text_config is None:
            raise ValueError("CambrianConfig.text_config is required (the LLM architecture)")
        self.towers = nn.ModuleList(build_tower(t) for t in config.tower_configs)
        if not len(self.towers):
            raise ValueError("CambrianConfig.towers is empty: a Cambrian model needs at least one vision tower")
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        connector = config.connector_config
        llm_width = config.text_config.hidden_size
        self.in_llm_layers = connector.in_llm_layers(config.text_config.num_hidden_layers)
        if connector.type == "sva":
            self.connector = SpatialVisionAggregator(
                connector,
                tower_channels=[t.hidden_size for t in self.towers],
                tower_grid_sides=[t.grid_size for t in self.towers],
                llm_hidden_size=llm_width,
                tower_names=[t.name for t in self.towers],
                num_llm_aggregation_layers=len(self.in_llm_layers),
            )
        elif connector.type == "mlp":
            self.connector = MLPProjector([t.hidden_size for t in self.towers], connector.query_side, llm_width)
        else:
            raise ValueError(f"unknown connector type {connector.type!r}; use 'sva' or 'mlp'")
        self.image_newline = nn.Parameter(torch.randn(llm_width) / llm_width**0.5) if connector.image_newline else None
        self.readout = None  # G groups x R more tokens after each image's grid (connectors/coordinate_readout.py)
        if connector.readout_words:
            tower = self.towers[0]
            self.readout = CoordinateReadout(tower.hidden_size, tower.grid_size, len(connector.readout_words),
                                             llm_width, connector.readout_heads, connector.readout_values,
                                             groups=connector.readout_groups,
                                             temperature=connector.readout_temperature)
        layers = decoder_layers(self.language_model)
        for k, layer_index in enumerate(self.in_llm_layers):
            layers[layer_index].register_forward_hook(partial(self._aggregate_after_layer, k), with_kwargs=True)
        self.post_init()

    # -- plumbing expected by transformers / peft -----------------------------------------------------------------
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    @property
    def image_transform(self) -> MultiTowerTransform:
        """PIL image -> {tower name: pixels}, every tower with its own preprocessing."""
        return MultiTowerTransform({tower.name: tower.transform for tower in self.towers})

    def image_inputs(self, images: list) -> dict:
        """PIL images -> the `pixel_values` ({tower: (N, 3, R, R)}, on the model's device) and `image_sizes` that
        forward/generate take, in the given order; {} for no images."""
        if not images:
            return {}
        per_image = [self.image_transform(image) for image in images]
        pixel_values = {name: torch.stack([p[name] for p in per_image]).to(self.device) for name in per_image[0]}
        return {"pixel_values": pixel_values, "image_sizes": [image.size for image in images]}

    @property
    def query_side(self) -> int:
        return self.config.connector_config.query_side

    def image_grid_shape(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """(rows, cols) of visual cells kept for an image of this (width, height)."""
        L = self.query_side
        if not self.config.connector_config.unpad:
            return L, L
        rows, cols = unpadded_cells(image_size, L)
        return rows.stop - rows.start, cols.stop - cols.start

    def num_image_tokens(self, image_size: tuple[int, int]) -> int:
        rows, cols = self.image_grid_shape(image_size)
        readout = 0 if self.readout is None else self.config.connector_config.readout_tokens * len(self.readout.groups)
        return rows * (cols + (self.image_newline is not None)) + readout

    def _default_image_sizes(self, count: int) -> list[tuple[int, int]]:
        side = self.towers[0].config.image_size
        return [(side, side)] * count

    # -- images -> visual tokens ----------------------------------------------------------------------------------
    def encode_images(
        self,
        pixel_values: dict[str, torch.Tensor] | torch.Tensor,
        image_sizes: list[tuple[int, int]] | None = None,
    ) -> EncodedImages:
        if isinstance(pixel_values, torch.Tensor):
            if len(self.towers) != 1:
                raise ValueError(f"pixel_values must be a dict keyed by tower name for {len(self.towers)} towers")
            pixel_values = {self.towers[0].name: pixel_values}
        missing = [t.name for t in self.towers if t.name not in pixel_values]
        if missing:
            raise KeyError(f"pixel_values has no entry for towers {missing}; keys given: {sorted(pixel_values)}")
        grids = [tower(pixel_values[tower.name]) for tower in self.towers]  # each (I, h_k, w_k, C_k)
        count = grids[0].shape[0]
        image_sizes = [tuple(s) for s in image_sizes] if image_sizes is not None else self._default_image_sizes(count)
        if len(image_sizes) != count:
            raise ValueError(f"{len(image_sizes)} image_sizes for {count} images")
        vision = None
        if isinstance(self.connector, SpatialVisionAggregator):
            vision = self.connector.prepare(grids, image_sizes)
            grid_tokens = self.connector(vision)  # (I, L, L, d)
        else:
            grid_tokens = self.connector(grids)
        L = self.query_side
        cell_ids = torch.arange(L * L, device=grid_tokens.device).view(L, L)
        tokens, shapes, cells = [], [], []
        for i, size in enumerate(image_sizes):
            rows, cols = unpadded_cells(size, L) if self.config.connector_config.unpad else (slice(0, L), slice(0, L))
            kept = grid_tokens[i, rows, cols]  # (h', w', d)
            if self.image_newline is not None:
                newline = self.image_newline.to(kept.dtype).expand(kept.shape[0], 1, -1)
                kept = torch.cat([kept, newline], dim=1)  # (h', w' + 1, d)
            tokens.append(kept.reshape(-1, kept.shape[-1]))
            shapes.append((rows.stop - rows.start, cols.stop - cols.start))
            cells.append(cell_ids[rows, cols].reshape(-1))
        if self.readout is not None:  # after the grid: a soft word per group, read off tower 0's grid (each R times)
            words = self.readout(grids[0])  # (I, G, d)
            repeat = self.config.connector_config.readout_tokens
            tokens = [torch.cat([t, words[i].to(t.dtype).repeat_interleave(repeat, dim=0)])
                      for i, t in enumerate(tokens)]
        return EncodedImages(tokens, shapes, vision, cells)

    def _in_llm_aggregation(self, input_ids: torch.Tensor, images: EncodedImages) -> InLLMAggregation | None:
        if images.vision is None or not self.in_llm_layers:
            return None
        spans = image_token_positions(input_ids, self.config.image_token_id, images.tokens_per_image)
        newline = int(self.image_newline is not None)
        positions, image_index = [], []
        for i, (span, (rows, cols)) in enumerate(zip(spans, images.shapes, strict=True)):
            grid = span[:rows * (cols + newline)]  # the readout's tokens, if any, come after the grid
            positions.append(grid.view(rows, cols + newline)[:, :cols].reshape(-1))  # newline column excluded
            image_index.append(torch.full((rows * cols,), i, device=span.device))
        return InLLMAggregation(
            torch.cat(positions), torch.cat(image_index), torch.cat(images.cell_index), images.vision
        )

    def _aggregate_after_layer(self, k: int, module: nn.Module, args, kwargs, output):
        """Forward hook after decoder layer start + k * stride: the k-th in-LLM SVA block.

        The context arrives as a keyword argument that transformers passes from the causal LM's forward down to every
        decoder layer, so it belongs to this call only (a bare `language_model(...)` call runs no block) and
        gradient-checkpoint recomputation sees it again.
        """
        context: InLLMAggregation | None = kwargs.get(AGGREGATION_KWARG)
        if context is None:
            return None
        hidden = output[0] if isinstance(output, tuple) else output
        batch, length, width = hidden.shape
        flat = hidden.reshape(batch * length, width)
        updated = self.connector.aggregate_in_llm(
            k, flat[context.positions], context.vision, context.image_index, context.cell_index
        )
        hidden = flat.index_copy(0, context.positions, updated).view(batch, length, width)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    # -- forward ---------------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: dict[str, torch.Tensor] | torch.Tensor | None = None,
        image_sizes: list[tuple[int, int]] | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ):
        """Returns the LLM's `CausalLMOutputWithPast` with `loss` (fp32 next-token CE on supervised tokens).

        `logits_to_keep` (0: all) is named here so that `generate` finds it and asks for the last position only: the
        prompt's other logits are never read, and the LM head over the whole prompt is about a fifth of a prefill.
        """
        if labels is not None and logits_to_keep:
            raise ValueError("labels need the logits of every position: pass logits_to_keep=0")
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("pass input_ids (or inputs_embeds for a text-only call)")
            # generate() drops an all-ones mask; then the LLM (and its cache) works without one
            layout_mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
            is_image = input_ids == self.config.image_token_id
            if pixel_values is not None:
                images = self.encode_images(pixel_values, image_sizes)
                if check_placeholders(input_ids, self.config.image_token_id, images.tokens_per_image):
                    input_ids, attention_mask, labels = expand_placeholders(
                        input_ids,
                        layout_mask,
                        labels,
                        images.tokens_per_image,
                        self.config.image_token_id,
                        self._pad_token_id(),
                    )
                    position_ids = None
                    is_image = input_ids == self.config.image_token_id
                aggregation = self._in_llm_aggregation(input_ids, images)
                if aggregation is not None:
                    kwargs[AGGREGATION_KWARG] = aggregation
            elif bool(is_image.any()):
                raise ImagePlaceholderError(
                    f"found {int(is_image.sum())} image placeholder tokens but no pixel_values were given"
                )
            inputs_embeds = self.get_input_embeddings()(input_ids.masked_fill(is_image, 0))
            if pixel_values is not None and images.tokens:
                visual = torch.cat(images.tokens).to(inputs_embeds.dtype)
                inputs_embeds = inputs_embeds.masked_scatter(is_image.unsqueeze(-1), visual)
            if position_ids is None and not _has_past(kwargs):
                # positions count real tokens only, so left and right padding give the same logits
                layout_mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
                position_ids = (layout_mask.long().cumsum(-1) - 1).clamp(min=0)
        outputs = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )
        if labels is not None:
            logits = outputs.logits[:, :-1].float()
            outputs.loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX
            )
        return outputs

    def _pad_token_id(self) -> int:
        pad = self.config.text_config.pad_token_id
        if pad is None:
            pad = self.config.text_config.eos_token_id
        if isinstance(pad, list):
            pad = pad[0]
        return int(pad or 0)

    # -- generation ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: dict[str, torch.Tensor] | torch.Tensor | None = None,
        image_sizes: list[tuple[int, int]] | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ):
        """Greedy / sampled generation with the KV cache and streamers. Placeholders are expanded up front, so the
        returned sequences hold the expanded prompt; decode `sequences[:, input_len:]` for the answer."""
        if input_ids is not None and attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if pixel_values is not None and input_ids is not None:
            count = next(iter(pixel_values.values())).shape[0] if isinstance(pixel_values, dict) else len(pixel_values)
            image_sizes = (
                [tuple(s) for s in image_sizes] if image_sizes is not None else self._default_image_sizes(count)
            )
            per_image = [self.num_image_tokens(size) for size in image_sizes]
            if check_placeholders(input_ids, self.config.image_token_id, per_image):
                input_ids, attention_mask, _ = expand_placeholders(
                    input_ids,
                    attention_mask,
                    None,
                    per_image,
                    self.config.image_token_id,
                    self._pad_token_id(),
                    side="left",  # prompts must end together, even when the ids came unpadded
                )
        return super().generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            pixel_values=pixel_values,
            image_sizes=image_sizes,
            **kwargs,
        )


def _has_past(kwargs: dict) -> bool:
    cache = kwargs.get("cache", kwargs.get("past_key_values"))
    return cache is not None and cache.get_seq_length() > 0


# `AutoConfig` / `AutoModelForCausalLM.from_pretrained(folder)` open a Cambrian folder once `cambrian` is imported
# (the official checkpoints needed their repository on the path: issue #59). No remote code is involved.
AutoConfig.register(CambrianConfig.model_type, CambrianConfig, exist_ok=True)
AutoModelForCausalLM.register(CambrianConfig, CambrianForCausalLM, exist_ok=True)
