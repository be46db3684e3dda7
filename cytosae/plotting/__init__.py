"""Stage 6, plotting: figure panels, figure composers and the latent browser widget."""
