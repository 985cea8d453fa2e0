"""offline_moe: offline and low-data deep RL on Atari with Mixture-of-Experts torsos.

Importing this package never imports TensorFlow; TF, tensorflow-datasets and rlds live in
`offline_moe.data` and are imported there lazily (docs/development.md, the layout of the
package; tests/data/test_rlds.py checks it).
"""

__version__ = "0.1.0"
