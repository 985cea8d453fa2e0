"""offline_moe: offline and low-data deep RL on Atari with Mixture-of-Experts torsos.

Importing this package never imports TensorFlow; TF, tensorflow-datasets and rlds live in
`offline_moe.data` and are imported there lazily (see DESIGN.md, Boundaries).
"""

__version__ = "0.1.0"
