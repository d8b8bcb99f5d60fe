"""The playground's prompt → mask step: ``predictor.predict`` with the per-image half of the decoder kept.

SAM's mask decoder (segment-anything's ``MaskDecoder`` with a ``TwoWayTransformer``) mixes the 64×64
image embedding with the prompt's tokens. Part of that work does not depend on the prompt at all: the
dense positional encoding, the image embedding plus the learned "no mask" embedding, and in the first
transformer block the projections of the image side (keys and values of the token → image attention,
queries of the image → token attention: three 4096×256 → 128 matrix products). ``predictor.predict``
recomputes them on every edit; :class:`ReusingDecoder` computes them once per image and then runs
the rest of the decoder with the same operations in the same order, so its logits are **bit for bit**
those of ``predictor.predict`` (``tests/lessons/test_playground_state.py`` asserts it).

Anything else (a mask prompt, a decoder that is not segment-anything's, batched prompts) goes to
``predictor.predict`` unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from utils.prompts import check_box, check_points

__all__ = ["ReusingDecoder", "reusable"]


def reusable(model: Any) -> bool:
    """Whether ``model``'s prompt encoder and mask decoder are exactly segment-anything's classes."""
    from segment_anything.modeling.mask_decoder import MaskDecoder
    from segment_anything.modeling.prompt_encoder import PromptEncoder
    from segment_anything.modeling.transformer import Attention, TwoWayAttentionBlock, TwoWayTransformer

    decoder = getattr(model, "mask_decoder", None)
    if type(decoder) is not MaskDecoder or type(getattr(model, "prompt_encoder", None)) is not PromptEncoder:
        return False
    transformer = decoder.transformer
    if type(transformer) is not TwoWayTransformer or not len(transformer.layers):
        return False
    first = transformer.layers[0]
    attentions = (first.self_attn, first.cross_attn_token_to_image, first.cross_attn_image_to_token)
    return type(first) is TwoWayAttentionBlock and all(type(a) is Attention for a in attentions)


def _attend(attention: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """segment-anything's ``Attention.forward`` after its three input projections (same operations, same order)."""
    heads = attention.num_heads
    q, k, v = (attention._separate_heads(x, heads) for x in (q, k, v))
    weights = q @ k.permute(0, 1, 3, 2)
    weights = weights / math.sqrt(q.shape[-1])
    weights = torch.softmax(weights, dim=-1)
    return attention.out_proj(attention._recombine_heads(weights @ v))


class ReusingDecoder:
    """``predict(point_coords, point_labels, box, multimask_output)`` → ``(masks, scores, low_res_logits)``,
    the same arrays as ``predictor.predict``, reusing what depends only on the image.

    ``predictor`` is a ``SamPredictor`` (or a :class:`utils.models.CachedPredictor` around one) with its
    image set. The per-image part is recomputed whenever the predictor's ``features`` tensor or the
    weights it was made from change (another image, a restored embedding, a training step).
    """

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.model = getattr(predictor, "model", None)  # test doubles have none: they go to predictor.predict
        self.enabled = reusable(self.model)
        self.image_passes = 0  # how often the per-image part was computed
        self._key: tuple | None = None
        self._image: dict[str, Any] = {}

    # ----------------------------------------------------------------------------- per image
    def _weights_key(self) -> tuple:
        """Identity and version of everything the per-image part is made from."""
        encoder, first = self.model.prompt_encoder, self.model.mask_decoder.transformer.layers[0]
        tensors = [self.predictor.features, encoder.pe_layer.positional_encoding_gaussian_matrix,
                   encoder.no_mask_embed.weight]  # fmt: skip
        for attention, names in ((first.cross_attn_token_to_image, "kv"), (first.cross_attn_image_to_token, "q")):
            for name in names:
                layer = getattr(attention, f"{name}_proj")
                tensors += [layer.weight, layer.bias]
        # An inference tensor (the encoder's features) has no version counter; it is replaced, not edited.
        # The key holds the tensors themselves (compared by identity), so a freed tensor's id cannot come back
        # for another image's features while this cache still refers to it.
        return tuple((t, None if t.is_inference() else t._version) for t in tensors)

    @staticmethod
    def _same(key: tuple, other: tuple | None) -> bool:
        return other is not None and len(key) == len(other) and all(
            a is b and va == vb for (a, va), (b, vb) in zip(key, other)
        )

    def _image_part(self) -> dict[str, Any]:
        key = self._weights_key()
        if not self._same(key, self._key):
            self._image = self._compute_image_part()
            self._key = key
            self.image_passes += 1
        return self._image

    def _compute_image_part(self) -> dict[str, Any]:
        """What ``MaskDecoder.predict_masks`` and the first ``TwoWayAttentionBlock`` compute from the image alone."""
        encoder, first = self.model.prompt_encoder, self.model.mask_decoder.transformer.layers[0]
        features = self.predictor.features
        _, no_mask = encoder(points=None, boxes=None, masks=None)  # the learned "no mask" embedding, batch 1
        src = torch.repeat_interleave(features, 1, dim=0) + no_mask
        pos_src = torch.repeat_interleave(encoder.get_dense_pe(), 1, dim=0)
        keys = src.flatten(2).permute(0, 2, 1)
        key_pe = pos_src.flatten(2).permute(0, 2, 1)
        keys_with_pe = keys + key_pe
        to_image, to_token = first.cross_attn_token_to_image, first.cross_attn_image_to_token
        return {
            "shape": src.shape,
            "keys": keys,
            "key_pe": key_pe,
            "token_to_image_k": to_image.k_proj(keys_with_pe),
            "token_to_image_v": to_image.v_proj(keys),
            "image_to_token_q": to_token.q_proj(keys_with_pe),
        }

    # ----------------------------------------------------------------------------- per prompt
    def _first_block(self, image: dict, queries: torch.Tensor, query_pe: torch.Tensor) -> tuple:
        """``TwoWayAttentionBlock.forward`` with the image-side projections taken from ``image``."""
        block = self.model.mask_decoder.transformer.layers[0]
        if block.skip_first_layer_pe:
            queries = block.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + block.self_attn(q=q, k=q, v=queries)
        queries = block.norm1(queries)
        to_image = block.cross_attn_token_to_image
        q = to_image.q_proj(queries + query_pe)
        queries = block.norm2(queries + _attend(to_image, q, image["token_to_image_k"], image["token_to_image_v"]))
        queries = block.norm3(queries + block.mlp(queries))
        to_token = block.cross_attn_image_to_token
        q = queries + query_pe
        attn_out = _attend(to_token, image["image_to_token_q"], to_token.k_proj(q), to_token.v_proj(queries))
        keys = block.norm4(image["keys"] + attn_out)
        return queries, keys

    def _decode(self, sparse: torch.Tensor, multimask_output: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``MaskDecoder.forward`` for one prompt: (low-res logits, IoU-head scores)."""
        decoder = self.model.mask_decoder
        transformer = decoder.transformer
        image = self._image_part()
        output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
        tokens = torch.cat((output_tokens.unsqueeze(0).expand(sparse.size(0), -1, -1), sparse), dim=1)
        queries, keys = self._first_block(image, tokens, tokens)
        for layer in transformer.layers[1:]:
            queries, keys = layer(queries=queries, keys=keys, query_pe=tokens, key_pe=image["key_pe"])
        q, k = queries + tokens, keys + image["key_pe"]
        queries = transformer.norm_final_attn(queries + transformer.final_attn_token_to_image(q=q, k=k, v=keys))
        # The rest of MaskDecoder.predict_masks: upscale the image side, one hypernetwork per mask token.
        b, c, h, w = image["shape"]
        upscaled = decoder.output_upscaling(keys.transpose(1, 2).view(b, c, h, w))
        mask_tokens = queries[:, 1 : 1 + decoder.num_mask_tokens, :]
        mlps = decoder.output_hypernetworks_mlps
        hyper_in = torch.stack([mlp(mask_tokens[:, i, :]) for i, mlp in enumerate(mlps)], dim=1)
        b, c, h, w = upscaled.shape
        masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
        scores = decoder.iou_prediction_head(queries[:, 0, :])
        chosen = slice(1, None) if multimask_output else slice(0, 1)
        return masks[:, chosen], scores[:, chosen]

    def _postprocess(self, low_res: torch.Tensor) -> torch.Tensor:
        """``Sam.postprocess_masks``, skipping a resize to the size the logits already have (an identity:
        bilinear at scale 1 copies), e.g. LiteMedSAM's 256² logits for a 256² image."""
        p, side = self.predictor, self.model.image_encoder.img_size
        masks = low_res
        if tuple(masks.shape[-2:]) != (side, side):
            masks = F.interpolate(masks, (side, side), mode="bilinear", align_corners=False)
        masks = masks[..., : p.input_size[0], : p.input_size[1]]
        if tuple(masks.shape[-2:]) != tuple(p.original_size):
            masks = F.interpolate(masks, p.original_size, mode="bilinear", align_corners=False)
        return masks

    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        multimask_output: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What ``predictor.predict(point_coords, point_labels, box, multimask_output=...)`` returns."""
        p = self.predictor
        if not self.enabled:
            return p.predict(point_coords, point_labels, box, multimask_output=multimask_output)
        if not getattr(p, "is_image_set", False):
            raise ValueError("No image set: call predictor.set_image(image) before predict().")
        points = boxes = None
        if point_coords is not None or point_labels is not None:
            if point_coords is None or point_labels is None:
                raise ValueError("Points need both point_coords (N, 2) as x, y and point_labels (N,) with 1/0.")
            coords, labels = check_points(point_coords, point_labels, p.original_size)
            coords = p.transform.apply_coords(coords, p.original_size)
            coords = torch.as_tensor(coords, dtype=torch.float, device=p.device)
            labels = torch.as_tensor(labels, dtype=torch.int, device=p.device)
            points = (coords[None, :, :], labels[None, :])
        if box is not None:
            box = p.transform.apply_boxes(check_box(box, p.original_size), p.original_size)
            boxes = torch.as_tensor(box, dtype=torch.float, device=p.device)[None, :]
        with torch.inference_mode():
            sparse, _ = self.model.prompt_encoder(points=points, boxes=boxes, masks=None)
            low_res, scores = self._decode(sparse, multimask_output)
            masks = self._postprocess(low_res) > self.model.mask_threshold
        return masks[0].cpu().numpy(), scores[0].cpu().numpy(), low_res[0].cpu().numpy()
