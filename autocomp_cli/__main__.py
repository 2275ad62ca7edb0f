"""`python -m autocomp_cli` runs the `autocomp-env` command."""

import sys

from autocomp_cli.main import main

sys.exit(main())
