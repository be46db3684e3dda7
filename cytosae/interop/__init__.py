"""Interoperability: the authors' checkpoint format and their published latent statistics."""

from cytosae.interop.official_sae import export_official, load_official, read_official
from cytosae.interop.official_stats import load_official_stats

__all__ = ["export_official", "load_official", "load_official_stats", "read_official"]
