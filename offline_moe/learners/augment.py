"""DrQ image augmentation in JAX (Kostrikov et al. 2021; Dopamine's `drq_image_augmentation`).

Per image: replicate-pad the 84x84 frame stack by 4 pixels on each side, crop a random 84x84
window (the same shift for all stacked frames of that image), then multiply by one scalar
1 + 0.05 * clip(N(0, 1), -2, 2). Works on float images (call after `preprocess_obs`); uint8
input is accepted and returned as float32 in [0, 255] scale.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

PAD = 4
INTENSITY_SCALE = 0.05


def random_shift(image: jax.Array, dy: jax.Array, dx: jax.Array, pad: int = PAD) -> jax.Array:
    """Edge-pads one image [H, W, C] by `pad` and crops [H, W] at offset (dy, dx) in [0, 2*pad].

    A shift of (pad, pad) returns the image unchanged.
    """
    h, w, c = image.shape
    padded = jnp.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")  # [H+2p, W+2p, C]
    return jax.lax.dynamic_slice(padded, (dy, dx, 0), (h, w, c))


def intensity_factor(key: jax.Array, batch: int, scale: float = INTENSITY_SCALE) -> jax.Array:
    """[B] factors 1 + scale * clip(N(0,1), -2, 2)."""
    return 1.0 + scale * jnp.clip(jax.random.normal(key, (batch,)), -2.0, 2.0)


def drq_augment(
    key: jax.Array, images: jax.Array, pad: int = PAD, intensity_scale: float = INTENSITY_SCALE
) -> jax.Array:
    """DrQ augmentation of a batch [B, H, W, C]: random shift (edge pad + crop), then intensity.

    Args:
      key: PRNG key.
      images: [B, H, W, C] images.
      pad: pad width (4); the crop offset is uniform in {0, ..., 2*pad - 1} per axis and
        image (Dopamine's range).
      intensity_scale: 0.05; 0 disables the intensity jitter.

    Returns:
      [B, H, W, C] float32 augmented images.
    """
    assert images.ndim == 4, images.shape
    b = images.shape[0]
    images = images.astype(jnp.float32)
    k_shift, k_int = jax.random.split(key)
    # Offsets in {0, ..., 2 * pad - 1}: Dopamine's `random_crop` (labs/atari_100k/
    # atari_100k_rainbow_agent.py) draws randint(minval=0, maxval=padded - size), maxval
    # exclusive, so the shift 2 * pad is never drawn.
    shifts = jax.random.randint(k_shift, (b, 2), 0, 2 * pad)  # [B, 2]
    out = jax.vmap(lambda im, s: random_shift(im, s[0], s[1], pad))(images, shifts)
    factor = intensity_factor(k_int, b, intensity_scale)  # [B]
    return out * factor[:, None, None, None]
