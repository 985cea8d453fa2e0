"""Data ingest: public offline-RL formats -> replay cache (`offline_moe.replay.cache`).

The only package that touches TensorFlow, tensorflow-datasets and rlds, and only inside
functions (lazy imports), so `import offline_moe` and the training path stay TF-free.

Modules:
  games:         the 46 RL Unplugged Atari games (no TF).
  common:        `IngestError`, `Episode`, percent / checkpoint-range parsing (no TF).
  rlds_compat:   makes `import rlds` work without dm-reverb.
  rlu_format:    the `rlu_atari_checkpoints_ordered` feature spec, version and naming.
  tfds_source:   reads RLDS episodes from TFDS (`tfds:NAME`) or a dataset directory.
  dqn_replay:    reads the original DQN-Replay logs (`$store$_*_ckpt.N.gz`).
"""
