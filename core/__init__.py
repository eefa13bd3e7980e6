"""Pure-PyTorch core of the CNN Architecture Explorer (never imports streamlit)."""
