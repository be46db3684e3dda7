"""Stage 2, model: the DinoBloom backbone and the sparse autoencoder (with its sparse step and b_dec init)."""
