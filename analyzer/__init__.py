"""analyzer: incident post-mortem log analysis for LLM API services.

The library does the work over Polars frames; `analyzer.cli` is a thin Typer layer over it.
"""

from analyzer.config import Settings, load_settings
from analyzer.errors import AnalyzerError

__version__ = "0.1.0"
__all__ = ["AnalyzerError", "Settings", "__version__", "load_settings"]
