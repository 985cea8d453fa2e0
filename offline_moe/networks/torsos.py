"""Built-in torsos: `baseline`, `soft_moe`, `top1_moe`, `soft_moe_1_scaled`, `soft_moe_uniform`,
`tokenized_expert`.

Contract (every torso, built-in or user-supplied):

    features, aux = torso(x, train=...)

x: float32 [B, H, W, C] in [0, 1] (Atari [B, 84, 84, 4], MinAtar [B, 10, 10, C]; scale uint8
frames with `preprocess_obs`); features:
float32 [B, D]; aux: dict of jnp arrays with 'aux_loss' (scalar, 0.0 where none) always present
plus values worth logging. Torsos never read configs; the head that follows is the learner's.

- `baseline`: encoder -> flatten -> Dense(512 * width, xavier_uniform) -> ReLU (128 * width
  after the MinAtar encoder: `encoders.DENSE_UNITS`). `width = n` is the paper's 'scaled
  baseline'.
- `soft_moe` / `top1_moe`: encoder -> tokens (`Tokenizer`) -> `SoftMoE` / `Top1MoE` -> flatten
  (no pooling, no residual), so D = m * d: the MoE replaces the baseline's penultimate dense
  layer. Paper defaults: Impala encoder, 8 experts, per_conv tokens, expert width 512,
  capacity factor 1.
- `soft_moe_1_scaled`: the single-expert control of Sokar et al. 2025 ("Don't flatten,
  tokenize! Unlocking the key to SoftMoE's efficacy in deep RL", ICLR; their "SoftMoE-1,
  scaled"): a Soft MoE with one expert, scaled so that it is as wide as the n experts it is
  compared with (H = n * expert_width; its p = m slots equal the n experts' m slots in all).
  Tokens are still dispatched to slots and combined, as in any Soft MoE.
- `soft_moe_uniform`: `soft_moe` with its routing fixed uniform (Phi = 0, not trained): every
  slot receives the mean token and every token the mean of the experts' outputs, so the torso
  is the n experts applied to the global average pool of the feature map. It is what a Soft
  MoE whose router never leaves its uniform start computes: the control that tells routing
  apart from pooling.
- `tokenized_expert`: this suite's own ablation, one step further: encoder -> tokens -> one
  expert MLP applied to every token (no dispatch, no combine, no slots) -> flatten, the expert
  H = n * expert_width wide. It separates tokenisation from routing altogether.

`noisy=True` (every torso here): the penultimate hidden layer is a factorised `NoisyDense`
(baseline: the 512-unit Dense, as Dopamine's FullRainbowNetwork; MoE torsos: the first layer of
each expert, as Dopamine's labs/moes ExpertModel). It draws from the 'noise' rng when
train=True and is exactly noiseless when train=False. With noisy=False the parameters are
those of the plain layers (same names and shapes).
"""

import flax.linen as nn
import jax.numpy as jnp

from offline_moe.networks.encoders import DENSE_UNITS, ENCODERS, make_encoder
from offline_moe.networks.moe import ExpertMLP, SoftMoE, Top1MoE
from offline_moe.networks.noisy import NoisyDense
from offline_moe.networks.registry import register_torso

HIDDEN_UNITS = DENSE_UNITS["impala"]  # the paper's penultimate dense layer (512)
TOKENIZATIONS = ("per_conv", "per_feat", "per_samp", "per_patch")


def _check_encoder(torso: str, encoder: str) -> None:
    if encoder not in ENCODERS:
        raise ValueError(
            f"torso {torso!r}: unknown encoder {encoder!r}; valid encoders: "
            f"{', '.join(sorted(ENCODERS))}"
        )


def _check_input(torso: str, x) -> None:
    if x.ndim != 4:
        raise ValueError(f"torso {torso!r}: expected x of shape [B, H, W, C], got {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"torso {torso!r}: expected float observations in [0, 1], got dtype {x.dtype}; "
            "scale uint8 frames with offline_moe.networks.preprocess_obs first"
        )


class Tokenizer(nn.Module):
    """The tokenisation shared by all MoE torsos: feature map [B, h, w, c] -> tokens [B, m, d].

    per_conv:  one token per spatial position, m = h*w, d = c (the paper's default, 'PerConv').
    per_feat:  one token per channel, m = c, d = h*w (the per_conv matrix transposed).
    per_samp:  one token per sample, m = 1, d = h*w*c.
    per_patch: learned conv embedding (kernel = stride = patch_size, VALID, `embedding_size`
               features, default c), m = number of patches (9 for 11x11 and patch 3).

    Attributes:
      tokenization: one of TOKENIZATIONS.
      patch_size: patch edge for per_patch.
      embedding_size: per_patch token size (default: the feature map's channels).
    """

    tokenization: str = "per_conv"
    patch_size: int = 3
    embedding_size: int | None = None

    @nn.compact
    def __call__(self, fmap):  # [B, h, w, c]
        b, h, w, c = fmap.shape
        if self.tokenization == "per_conv":
            return fmap.reshape(b, h * w, c)
        if self.tokenization == "per_feat":
            return fmap.reshape(b, h * w, c).transpose(0, 2, 1)  # [B, c, h*w]
        if self.tokenization == "per_samp":
            return fmap.reshape(b, 1, h * w * c)
        if self.tokenization == "per_patch":
            if self.patch_size > min(h, w):
                raise ValueError(f"patch_size {self.patch_size} exceeds feature map {h}x{w}")
            k = (self.patch_size, self.patch_size)
            emb = nn.Conv(self.embedding_size or c, k, strides=k, padding="VALID", name="embed")
            patches = emb(fmap)  # [B, h', w', e]
            return patches.reshape(b, -1, patches.shape[-1])
        raise ValueError(
            f"unknown tokenization {self.tokenization!r}; valid: {', '.join(TOKENIZATIONS)}"
        )


@register_torso("baseline")
class BaselineTorso(nn.Module):
    """Encoder -> flatten -> Dense(512 * width) -> ReLU (MinAtar encoder: Dense(128 * width)).

    Attributes:
      encoder: 'impala', 'nature' or 'minatar'.
      width: multiplier of the encoder's network's hidden units (`DENSE_UNITS`: 512, MinAtar
        128; the paper's scaled baseline uses width = n).
      noisy: the hidden layer is a factorised NoisyDense (Dopamine's FullRainbowNetwork).
    """

    encoder: str = "impala"
    width: float = 1
    noisy: bool = False

    def __post_init__(self):
        _check_encoder("baseline", self.encoder)
        if self.width <= 0:
            raise ValueError(f"torso 'baseline': width must be > 0, got {self.width}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x, *, train: bool):
        _check_input("baseline", x)
        fmap = make_encoder(self.encoder)(x)  # [B, 11, 11, c] (MinAtar [B, 8, 8, 16])
        flat = fmap.reshape(fmap.shape[0], -1)  # [B, h*w*c]
        units = max(1, round(DENSE_UNITS[self.encoder] * self.width))
        if self.noisy:
            hidden = NoisyDense(units, name="hidden")(flat, train=train)
        else:
            hidden = nn.Dense(units, kernel_init=nn.initializers.xavier_uniform(), name="hidden")(
                flat
            )
        features = nn.relu(hidden)  # [B, DENSE_UNITS * width]
        return features, {"aux_loss": jnp.zeros((), jnp.float32)}


class _MoETorso(nn.Module):
    """Shared fields and body of the MoE torsos: encoder -> Tokenizer -> MoE -> flatten.

    Attributes:
      encoder: 'impala', 'nature' or 'minatar'.
      num_experts: n.
      expert_width: H, hidden units per expert.
      tokenization: per_conv | per_feat | per_samp | per_patch.
      patch_size: patch edge for per_patch tokens.
      capacity_factor: slots (Soft MoE) / capacity (Top-1) per expert = ceil(m * cf / n).
      noisy: noisy first layer in every expert (Dopamine's labs/moes ExpertModel).
    """

    encoder: str = "impala"
    num_experts: int = 8
    expert_width: int = 512
    tokenization: str = "per_conv"
    patch_size: int = 3
    capacity_factor: float = 1.0
    noisy: bool = False

    def __post_init__(self):
        torso = type(self).__name__
        _check_encoder(torso, self.encoder)
        if self.tokenization not in TOKENIZATIONS:
            raise ValueError(
                f"torso {torso!r}: unknown tokenization {self.tokenization!r}; "
                f"valid: {', '.join(TOKENIZATIONS)}"
            )
        if self.num_experts < 1 or self.expert_width < 1 or self.capacity_factor <= 0:
            raise ValueError(
                f"torso {torso!r}: num_experts, expert_width and capacity_factor must be "
                f"positive, got {self.num_experts}, {self.expert_width}, {self.capacity_factor}"
            )
        super().__post_init__()

    def make_moe(self) -> nn.Module:
        raise NotImplementedError

    @nn.compact
    def __call__(self, x, *, train: bool):
        _check_input(type(self).__name__, x)
        fmap = make_encoder(self.encoder)(x)  # [B, h, w, c]
        tokens = Tokenizer(self.tokenization, self.patch_size, name="tokenizer")(fmap)  # [B,m,d]
        y, aux = self.make_moe()(tokens, train=train)  # [B, m, d]
        return y.reshape(y.shape[0], -1), aux  # [B, m*d]


@register_torso("soft_moe")
class SoftMoETorso(_MoETorso):
    """Encoder -> tokens -> Soft MoE -> flatten (see `_MoETorso` for the shared fields).

    Attributes:
      normalize_tokens: l2-normalise tokens and Phi with a learned scale (Puigcerver et al.).
      phi_init_scale: multiplies Phi's initial values (1: the paper's; see `SoftMoE`).
    """

    normalize_tokens: bool = False
    phi_init_scale: float = 1.0

    def make_moe(self) -> nn.Module:
        return SoftMoE(
            num_experts=self.num_experts,
            expert_width=self.expert_width,
            capacity_factor=self.capacity_factor,
            normalize=self.normalize_tokens,
            noisy=self.noisy,
            phi_init_scale=self.phi_init_scale,
            name="moe",
        )


@register_torso("soft_moe_1_scaled")
class SoftMoEOneScaledTorso(SoftMoETorso):
    """Sokar et al. 2025's control: `soft_moe` with one expert of H = n * expert_width.

    Takes the fields of `soft_moe`; `num_experts` is the n of the Soft MoE it is compared with
    and sets the width only, so a grid over n compares each Soft MoE with its own control.
    Its parameters are exactly those of `soft_moe` with num_experts=1 and
    expert_width=n * expert_width.
    """

    def make_moe(self) -> nn.Module:
        return SoftMoE(
            num_experts=1,
            expert_width=self.num_experts * self.expert_width,
            capacity_factor=self.capacity_factor,
            normalize=self.normalize_tokens,
            noisy=self.noisy,
            phi_init_scale=self.phi_init_scale,
            name="moe",
        )


@register_torso("soft_moe_uniform")
class SoftMoEUniformTorso(SoftMoETorso):
    """`soft_moe` with uniform routing held fixed: Phi starts at 0 and gets no gradient, so
    dispatch is 1 / m for every (token, slot) and combine 1 / (n p) for every (slot, token).

    Takes the fields of `soft_moe` (`phi_init_scale` and `normalize_tokens` are ignored: the
    logits are 0 whatever the tokens). Every token's output is the same d-vector, the mean over
    the n experts of expert_e(mean token), so the features are a function of the global
    average pool of the encoder's map. Same parameter tree as `soft_moe` (Phi is all zeros).
    """

    def make_moe(self) -> nn.Module:
        return SoftMoE(
            num_experts=self.num_experts,
            expert_width=self.expert_width,
            capacity_factor=self.capacity_factor,
            noisy=self.noisy,
            phi_init_scale=0.0,
            train_router=False,
            name="moe",
        )


@register_torso("top1_moe")
class Top1MoETorso(_MoETorso):
    """Encoder -> tokens -> Top-1 MoE -> flatten (see `_MoETorso` for the shared fields).

    Attributes:
      importance_weight: weight of the importance loss in aux_loss (0: off, the default).
      load_weight: weight of the load-balancing loss in aux_loss (0: off, the default).
    """

    importance_weight: float = 0.0
    load_weight: float = 0.0

    def make_moe(self) -> nn.Module:
        return Top1MoE(
            num_experts=self.num_experts,
            expert_width=self.expert_width,
            capacity_factor=self.capacity_factor,
            importance_weight=self.importance_weight,
            load_weight=self.load_weight,
            noisy=self.noisy,
            name="moe",
        )


@register_torso("tokenized_expert")
class TokenizedExpertTorso(nn.Module):
    """Encoder -> tokens -> one expert MLP per token (no routing) -> flatten.

    Tokenisation without routing (this suite's ablation; Sokar et al. 2025's control is
    `soft_moe_1_scaled`, which still routes): the same tokens as the MoE torsos, each mapped
    d -> H -> ReLU -> d by one shared `ExpertMLP` (the MoE experts' layer),
    H = num_experts * expert_width so the expert is as wide as the n experts it stands in for
    (and has their parameter count up to biases). D = m * d, as the MoE torsos.

    Attributes:
      encoder: 'impala', 'nature' or 'minatar'.
      num_experts: n of the MoE it is compared with (sets the width only).
      expert_width: hidden units per expert of that MoE.
      tokenization: per_conv | per_feat | per_samp | per_patch.
      patch_size: patch edge for per_patch tokens.
      noisy: noisy first layer of the expert.
    """

    encoder: str = "impala"
    num_experts: int = 8
    expert_width: int = 512
    tokenization: str = "per_conv"
    patch_size: int = 3
    noisy: bool = False

    def __post_init__(self):
        _check_encoder("tokenized_expert", self.encoder)
        if self.tokenization not in TOKENIZATIONS:
            raise ValueError(
                f"torso 'tokenized_expert': unknown tokenization {self.tokenization!r}; "
                f"valid: {', '.join(TOKENIZATIONS)}"
            )
        if self.num_experts < 1 or self.expert_width < 1:
            raise ValueError(
                "torso 'tokenized_expert': num_experts and expert_width must be positive, got "
                f"{self.num_experts}, {self.expert_width}"
            )
        super().__post_init__()

    @nn.compact
    def __call__(self, x, *, train: bool):
        _check_input("tokenized_expert", x)
        fmap = make_encoder(self.encoder)(x)  # [B, h, w, c]
        tokens = Tokenizer(self.tokenization, self.patch_size, name="tokenizer")(fmap)  # [B,m,d]
        hidden = self.num_experts * self.expert_width
        y = ExpertMLP(hidden, tokens.shape[-1], self.noisy, name="expert")(tokens, train)
        return y.reshape(y.shape[0], -1), {"aux_loss": jnp.zeros((), jnp.float32)}  # [B, m*d]
