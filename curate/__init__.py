"""curate: clean, versioned corpora from scraped Chinese text, with a diff report."""

__version__ = "0.1.0"
