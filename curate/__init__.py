"""curate: clean, versioned corpora from scraped Chinese text, with a diff report."""

from pathlib import Path

from curate import _compiled

__version__ = "0.1.0"

# Before any other module of curate is imported: a compiled module only where it was compiled
# from the source beside it (see curate._compiled).
_compiled.install(__name__, Path(__file__).resolve().parent)
