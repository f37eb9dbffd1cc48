"""cardpos: the composition root (configuration, CLI) over terminal/, drivers/, sync/ and ui/."""

__version__ = "0.1.0"
