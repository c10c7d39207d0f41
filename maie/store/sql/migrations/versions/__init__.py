"""One module per schema revision, applied in order, each whole or not at all."""
