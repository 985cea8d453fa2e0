"""offline_moe.configs: the agents' config files (`cql.py`, `cql_c51.py`, `der.py`, `drq_eps.py`,
`dqn.py`) and their shared dialect (`common.py`); the table of agents (`agents.py`); torso
variants and the one override rule (`overrides.py`)."""
