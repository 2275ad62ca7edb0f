"""Test-session settings: a private cache, so tests neither read nor fill the user's ~/.cache."""

import os
import tempfile

os.environ.setdefault("AUTOCOMP_CACHE", tempfile.mkdtemp(prefix="autocomp-test-cache-"))
