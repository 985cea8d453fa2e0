"""`python -m offline_moe.cli` is `offline-moe`."""

import sys

from offline_moe.cli.main import main

if __name__ == "__main__":  # not when a spawned worker process imports the main module
    sys.exit(main())
