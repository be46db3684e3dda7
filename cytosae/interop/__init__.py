"""Interoperability: the authors' checkpoint format and their published latent statistics."""
