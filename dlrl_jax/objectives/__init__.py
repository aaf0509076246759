"""Training objectives: EGSPO stepwise policy gradient, step selection, masked-diffusion SFT."""
