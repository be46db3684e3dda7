"""CytoSAE companion: sparse autoencoders on DinoBloom tokens for haematology.

The embedded default runs on a *synthetic* blood-smear world through a *randomly
initialised* DinoBloom architecture; see README.md.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
