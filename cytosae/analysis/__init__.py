"""Stage 5, analysis: latent statistics, thresholds, retrieval, barcodes, probe, differential latents, recovery."""
